import { randomBytes } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { toHex } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { parseQuote } from '../tdx/index.js';
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
import { identityOf, type ProviderIdentity } from './identity.js';
import { type Policy, reportOptionsOf } from './policy.js';
import type { FetchedAttestation, ProviderLink } from './provider-link.js';

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
}

const field = (value: unknown, key: string): unknown =>
  typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;

const lower = (hex: string): string => hex.replace(/^0x/i, '').toLowerCase();

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
      fetched = await link.fetchAttestation(nonce, algo);
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
    const result = await verifyReport(fetched.report, {
      ...reportOptionsOf(policy, expectAddress),
      nonce,
      nowSeconds: Math.floor(at / 1000),
      ...(this.options.fetch === undefined ? {} : { fetch: this.options.fetch }),
    });
    const checks = [...result.checks];
    let quoteSha256: string | undefined;
    const quoteHex = field(fetched.report, 'intel_quote');
    if (typeof quoteHex === 'string' && /^(0x)?([0-9a-fA-F]{2})+$/.test(quoteHex)) {
      const quote = new Uint8Array(Buffer.from(lower(quoteHex), 'hex'));
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
      const attested = typeof raw === 'string' ? lower(raw) : undefined;
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
      if (lower(address) === this.pinned)
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
          detail: `the provider now shows ${address}, not the key pinned at the first attestation (restart the gateway or set allowSignerChange)`,
        });
    }
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
    };
    if (attestation.ok && address !== undefined && (this.pinned === undefined || policy.allowSignerChange))
      this.pinned = lower(address);
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

  private record(attestation: Attestation): Attestation {
    this.last = attestation;
    if (attestation.ok) this.lastGood = attestation;
    return attestation;
  }
}
