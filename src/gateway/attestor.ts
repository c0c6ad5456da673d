import { randomBytes } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { toHex } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { type Collateral, parseQuote } from '../tdx/index.js';
import {
  BROKER_QUOTE_NOT_FRESH,
  CheckList,
  type CheckResult,
  checkTlsFingerprint,
  fetchFailure,
  normalizeNonce,
  type SigningAlgo,
  verifyReport,
} from '../verifier/index.js';
import { bareHex } from './bare-hex.js';
import { type E2eeRequirement, e2eeCheck } from './e2ee-requirement.js';
import { identityOf, type ProviderIdentity } from './identity.js';
import { type Policy, reportOptionsOf } from './policy.js';
import type { FetchedAttestation, ProviderLink } from './provider-link.js';
import { reportModelCheck } from './report-model-check.js';

/** One attestation of the provider: what was asked, what came back, what the checks said. */
export interface Attestation {
  ok: boolean;
  /** The first failed check's id (what a refused request names); undefined when ok. */
  failedCheck?: string;
  /**
   * False when the report did not answer our nonce and the policy accepted it anyway (a 0G broker's
   * static quote, `acceptBrokerQuote`): receipts and the status page say so.
   */
  fresh: boolean;
  /** The fresh nonce, 64 lowercase hex. */
  nonce: string;
  /** When it ran, milliseconds since the epoch. */
  at: number;
  source: string;
  checks: CheckResult[];
  /** The attested signer (address for ecdsa, public key for ed25519) when the report named a valid one. */
  signer?: { algo: SigningAlgo; address: string; publicKey?: string };
  /** sha256 of the raw quote bytes: which quote a receipt was checked against. */
  quoteSha256?: string;
  /** Over https: the attested TLS key (SPKI sha256 hex) answers are pinned to after this passed. */
  tlsFingerprint?: string;
  identity?: ProviderIdentity;
  /** The report as received, for the receipts file (offline re-checks). */
  report?: unknown;
  /** The Intel collateral the quote was checked with, for the receipts file (TCB re-checked offline). */
  collateral?: Collateral;
}

export interface AttestorOptions {
  link: ProviderLink;
  policy: Policy;
  logger: Logger;
  /** Clock, milliseconds. */
  now?: () => number;
  random?: (length: number) => Uint8Array;
  /** fetch for NRAS and PCCS (the verifier's outside calls). */
  fetch?: typeof globalThis.fetch;
  /** When the gateway encrypts: the E2EE checks (e2ee-requirement.ts); undefined: none. */
  e2ee?: E2eeRequirement;
  /** The most a report fetch may take, milliseconds (default REPORT_DEADLINE_MS). */
  reportDeadlineMs?: number;
}

const field = (value: unknown, key: string): unknown =>
  typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;

/** How long a report may take to arrive (a provider that trickles it must not stall re-attestation). */
export const REPORT_DEADLINE_MS = 60_000;

/** The message for a changed signing key: both keys, and the two ways out (issue 21 item 13). */
const signerChanged = (pinned: string, now: string): string =>
  `the provider now signs with ${now}, not ${now.startsWith('0x') ? '0x' : ''}${pinned} (the key pinned at the gateway's first attestation): ` +
  'if the provider restarted with a new key, set "allowSignerChange": true in the policy, or restart the gateway to pin the new key';

/** `promise`, or a rejection after `ms` (the link's own deadline should come first). */
const within = <T>(promise: Promise<T>, ms: number): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no report within ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
};

/**
 * Attests the provider with a fresh nonce through the verifier library (verifyReport: quote, TCB,
 * report_data binding, measurements, Dstack, GPU evidence, NRAS), applies the policy's extras
 * (RTMR3, the pinned signer), and keeps the last result. Concurrent calls share one run.
 */
export class Attestor {
  private last: Attestation | undefined;
  private lastGood: Attestation | undefined;
  /** The first signer that passed: later attestations must show the same one (policy.allowSignerChange). */
  private pinned: string | undefined;
  /** Keys (lowercase) whose passed attestation offered E2EE: a later report must too (`e2ee.downgrade`). */
  private readonly e2eeKeys = new Set<string>();
  private running: Promise<Attestation> | undefined;
  private readonly now: () => number;
  private readonly random: (length: number) => Uint8Array;

  constructor(private readonly options: AttestorOptions) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? ((n) => new Uint8Array(randomBytes(n)));
  }

  /** The latest attestation (passed or failed), if any ran. */
  get current(): Attestation | undefined {
    return this.last;
  }

  /** The latest attestation that passed, if the latest one passed: what answers are checked against. */
  get trusted(): Attestation | undefined {
    return this.last?.ok === true ? this.last : undefined;
  }

  /** The last attestation that passed, even if a later one failed (status page history). */
  get lastPassed(): Attestation | undefined {
    return this.lastGood;
  }

  attest(): Promise<Attestation> {
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async run(): Promise<Attestation> {
    const { link, policy, logger } = this.options;
    const nonce = normalizeNonce(this.random(32));
    const nonceHex = toHex(nonce);
    const at = this.now();
    const algo = policy.signingAlgo;
    let fetched: FetchedAttestation;
    try {
      fetched = await within(
        link.fetchAttestation(nonce, algo),
        this.options.reportDeadlineMs ?? REPORT_DEADLINE_MS,
      );
    } catch (error) {
      // The address and errno (ECONNREFUSED, ...) or what answered instead: what the user acts on.
      const detail =
        error instanceof SidecarError && error.code === 'report.fetch'
          ? error.message
          : fetchFailure(error, link.endpoint('/attestation/report').toString());
      logger.warn(
        { event: 'attestation', ok: false, check: 'report.fetch' },
        'provider attestation failed: report.fetch',
      );
      return this.record({
        ok: false,
        failedCheck: 'report.fetch',
        fresh: false,
        nonce: nonceHex,
        at,
        source: 'unreachable',
        checks: [
          {
            id: 'report.fetch',
            title: 'attestation report fetched for a fresh nonce',
            status: 'fail',
            detail,
          },
        ],
      });
    }
    const expectAddress = (await link.expectedSigner()) ?? policy.expectedSigningAddress;
    let collateral: Collateral | undefined;
    const result = await verifyReport(fetched.report, {
      ...reportOptionsOf(policy, expectAddress),
      onCollateral: (used) => {
        collateral = used;
      },
      nonce,
      nowSeconds: Math.floor(at / 1000),
      ...(this.options.fetch === undefined ? {} : { fetch: this.options.fetch }),
    });
    const checks = [...result.checks];
    let quoteSha256: string | undefined;
    const quoteHex = field(fetched.report, 'intel_quote');
    if (typeof quoteHex === 'string' && /^(0x)?([0-9a-fA-F]{2})+$/.test(quoteHex)) {
      const quote = new Uint8Array(Buffer.from(bareHex(quoteHex), 'hex'));
      quoteSha256 = toHex(sha256(quote));
      if (policy.rtmr3 !== undefined) {
        const title = 'RTMR3 is on the policy allow-list';
        try {
          const rtmr3 = toHex(parseQuote(quote).report.rtmr3);
          checks.push(
            policy.rtmr3.includes(rtmr3)
              ? { id: 'policy.rtmr3', title, status: 'pass', detail: 'RTMR3 allowed' }
              : { id: 'policy.rtmr3', title, status: 'fail', detail: `RTMR3 ${rtmr3} not allowed` },
          );
        } catch {
          checks.push({ id: 'policy.rtmr3', title, status: 'fail', detail: 'no parseable TDX quote' });
        }
      }
    }
    // Over https the link fetched the report on one connection: its certificate must be the key
    // the report binds (the binding itself is tdx.report-data's).
    let tlsFingerprint: string | undefined;
    if (fetched.tls !== undefined) {
      const raw = field(fetched.report, 'tls_cert_fingerprint');
      const attested = typeof raw === 'string' ? bareHex(raw) : undefined;
      const tlsChecks = new CheckList();
      checkTlsFingerprint(tlsChecks, fetched.report, attested, {
        https: true,
        wanted: true,
        peer: fetched.tls.peer,
        refused: fetched.tls.refused,
      });
      checks.push(...tlsChecks.results);
      if (tlsChecks.ok) tlsFingerprint = attested;
    }
    const address = result.signingAddress;
    if (address !== undefined && this.pinned !== undefined) {
      const title = 'signing key is the one pinned at the first attestation';
      if (bareHex(address) === this.pinned)
        checks.push({ id: 'gateway.signer-pinned', title, status: 'pass', detail: 'same key' });
      else if (policy.allowSignerChange)
        checks.push({
          id: 'gateway.signer-pinned',
          title,
          status: 'pass',
          detail: 'key changed; the policy allows it',
        });
      else
        checks.push({
          id: 'gateway.signer-pinned',
          title,
          status: 'fail',
          detail: signerChanged(this.pinned, address),
        });
    }
    if (policy.models !== undefined) checks.push(reportModelCheck(policy.models, fetched.report));
    const offered = address !== undefined && this.checkE2ee(checks, fetched.report, address);
    const failed = checks.find((c) => c.status === 'fail');
    const fresh = checks.some((c) => c.id === 'report.nonce' && c.status === 'pass');
    const publicKey = field(fetched.report, 'signing_public_key');
    const attestation: Attestation = {
      ok: failed === undefined,
      ...(failed === undefined ? {} : { failedCheck: failed.id }),
      fresh,
      nonce: nonceHex,
      at,
      source: fetched.source,
      checks,
      ...(address === undefined
        ? {}
        : { signer: { algo, address, ...(typeof publicKey === 'string' ? { publicKey } : {}) } }),
      ...(quoteSha256 === undefined ? {} : { quoteSha256 }),
      ...(tlsFingerprint === undefined ? {} : { tlsFingerprint }),
      identity: identityOf(fetched.report, checks, quoteSha256),
      report: fetched.report,
      ...(collateral === undefined ? {} : { collateral }),
    };
    if (attestation.ok && address !== undefined && (this.pinned === undefined || policy.allowSignerChange))
      this.pinned = bareHex(address);
    if (attestation.ok && offered && address !== undefined) this.e2eeKeys.add(bareHex(address));
    // Answers go only to the key this attestation saw; a renewed certificate is re-pinned here.
    if (attestation.ok && tlsFingerprint !== undefined) link.pinTls?.(tlsFingerprint);
    logger[attestation.ok ? 'info' : 'warn'](
      {
        event: 'attestation',
        ok: attestation.ok,
        check: attestation.failedCheck,
        fresh,
        signingAddress: address,
        quoteSha256,
        tlsFingerprint,
        source: fetched.source,
      },
      attestation.ok
        ? fresh
          ? 'provider attested'
          : `provider attested, NOT FRESH: ${BROKER_QUOTE_NOT_FRESH}`
        : `provider attestation failed: ${attestation.failedCheck}`,
    );
    return this.record(attestation);
  }

  /** Adds the E2EE check (issue 21, item 3) when the gateway encrypts; returns whether E2EE is offered. */
  private checkE2ee(checks: CheckResult[], report: unknown, address: string): boolean {
    const e2ee = this.options.e2ee;
    if (e2ee === undefined) return false;
    const offered = e2ee.offered(report, address);
    const check = e2eeCheck({
      required: e2ee.required,
      offered,
      offeredBefore: this.e2eeKeys.has(bareHex(address)),
    });
    if (check !== undefined) checks.push(check);
    return offered;
  }

  private record(attestation: Attestation): Attestation {
    this.last = attestation;
    if (attestation.ok) this.lastGood = attestation;
    return attestation;
  }
}
