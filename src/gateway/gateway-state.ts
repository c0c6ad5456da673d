import { SidecarError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { BROKER_QUOTE_NOT_FRESH } from '../verifier/index.js';
import { AcceptedIds } from './accepted-ids.js';
import type { Attestation, Attestor } from './attestor.js';
import type { ProviderLink } from './provider-link.js';
import type { Receipt, ReceiptLog } from './receipts.js';
import type { GatewayCounters } from './status-page.js';
import type { AnswerVerdict } from './verify-answer.js';

/** Whether new requests are refused after a failed answer, which check failed and since when. */
export interface Circuit {
  open: boolean;
  check?: string;
  since?: number;
  /** The failed answer's response id, when it had one (the status page names it). */
  answerId?: string;
  /** The failed check's detail: what differed (hashes and ids, never content). */
  detail?: string;
}

/** How the last call to the provider went (an answer or an attestation): the status page's "unreachable since". */
export interface Reachability {
  ok: boolean;
  /** When that call ended, milliseconds since the epoch. */
  at: number;
  /** Unreachable: when the current run of failed calls began. */
  since?: number;
  /** Unreachable: the error's code or message (e.g. ECONNREFUSED), never a request's content. */
  detail?: string;
}

/** What a verdict was about: for the log line and the receipt. */
export interface ExchangeMeta {
  path: string;
  stream: boolean;
  model?: string | undefined;
}

export interface GatewayStateOptions {
  attestor: Attestor;
  receipts: ReceiptLog;
  logger: Logger;
  now: () => number;
  onFailure: 'refuse' | 'warn';
  /** Receipts record whether the link's request hash was compared. */
  link: ProviderLink;
}

/**
 * What the gateway knows between requests: the attestation, the circuit and the counters. Every
 * attestation and every verdict goes through here, so that the circuit opens on a failed answer and
 * closes only on a passed attestation, whichever path (JSON, stream, TLS pin) saw it.
 */
export class GatewayState {
  readonly counters: GatewayCounters = {
    verified: 0,
    failed: 0,
    refused: 0,
    unsigned: 0,
    attestationsPassed: 0,
    attestationsFailed: 0,
  };
  /** Response ids accepted so far: a repeat fails `answer.replayed` (accepted-ids.ts states the bounds). */
  readonly accepted: AcceptedIds;
  private open: Circuit = { open: false };
  private reach: Reachability | undefined;
  /** Set by the gateway: re-attest at once (the attestation loop's `runNow`). */
  onSignerDoubt: (() => void) | undefined;

  constructor(private readonly options: GatewayStateOptions) {
    this.accepted = new AcceptedIds({ retainMs: 24 * 3600 * 1000, maxIds: 100_000, now: options.now });
  }

  /**
   * Since when the provider could not be reached (its report not fetched, or a call that got no
   * answer), until it answers again: the status page says "unreachable since", not "verified".
   */
  get unreachableSince(): number | undefined {
    return this.reach?.ok === false ? this.reach.since : undefined;
  }

  /** Records a call that did not reach the provider; `since` stays at the first of a run of failures. */
  providerUnreachable(detail = 'no answer'): void {
    const at = this.options.now();
    const since = this.reach?.ok === false ? (this.reach.since ?? at) : at;
    this.reach = { ok: false, at, since, detail };
  }

  /** Records a call that reached the provider (whatever it answered). */
  providerReached(): void {
    this.reach = { ok: true, at: this.options.now() };
  }

  /**
   * An answer signed by a key that is not the attested one, or the provider's 400
   * `e2ee_model_key_mismatch`: the provider may have restarted with a new key. Re-attest now rather
   * than at the interval (issue 21 item 13); what that attestation finds is what the user is told.
   */
  signerDoubted(reason: string): void {
    this.options.logger.warn(
      { event: 'signer_doubt', reason },
      're-attesting now: the answer was not signed by the attested key',
    );
    this.onSignerDoubt?.();
  }

  get attestor(): Attestor {
    return this.options.attestor;
  }

  get receipts(): ReceiptLog {
    return this.options.receipts;
  }

  get onFailure(): 'refuse' | 'warn' {
    return this.options.onFailure;
  }

  get circuit(): Readonly<Circuit> {
    return this.open;
  }

  /** How the last call to the provider went; undefined before the first. */
  get reachability(): Readonly<Reachability> | undefined {
    return this.reach;
  }

  /**
   * Runs an attestation; a passed one closes the circuit, except when it ran because an answer's
   * signer was doubted (`trigger: 'signer'`) and shows the same key: then the key did not change, the
   * bad signature came from someone else, and the circuit stays open until the regular attestation.
   */
  async attestNow(trigger?: 'signer'): Promise<Attestation> {
    const before = this.options.attestor.lastPassed?.signer?.address;
    const a = await this.options.attestor.attest();
    // report.fetch is the one check that fails when the report never came (attestor.ts).
    if (a.failedCheck === 'report.fetch')
      this.providerUnreachable(a.checks.find((c) => c.id === 'report.fetch')?.detail ?? 'request failed');
    else this.providerReached();
    if (a.ok) {
      this.counters.attestationsPassed += 1;
      if (trigger === 'signer' && this.open.open && a.signer?.address === before) return a;
      if (this.open.open)
        this.options.logger.info(
          { event: 'circuit', check: this.open.check },
          'circuit closed: attestation passed',
        );
      this.open = { open: false };
    } else this.counters.attestationsFailed += 1;
    return a;
  }

  /** The attestation a new request is checked against, or why it is refused (counted as refused). */
  admit(): { attestation: Attestation } | { refusal: SidecarError; verification: string } {
    const a = this.options.attestor.trusted;
    if (a === undefined) {
      this.counters.refused += 1;
      const check = this.options.attestor.current?.failedCheck ?? 'report.pending';
      // A changed key says which, and the way out (attestor.ts names both addresses).
      const why =
        check === 'gateway.signer-pinned'
          ? `: ${this.options.attestor.current?.checks.find((c) => c.id === check)?.detail ?? ''}`
          : '';
      return {
        refusal: new SidecarError(`the provider is not attested: ${check}${why}`, {
          status: 503,
          code: 'attestation_failed',
        }),
        verification: `failed: ${check}`,
      };
    }
    if (this.open.open && this.options.onFailure === 'refuse') {
      this.counters.refused += 1;
      return {
        refusal: new SidecarError(
          `an earlier answer failed verification (${this.open.check}); requests are refused until the next attestation passes`,
          { status: 503, code: 'circuit_open' },
        ),
        verification: `failed: ${this.open.check ?? 'circuit'}`,
      };
    }
    return { attestation: a };
  }

  /**
   * An answer the provider left unsigned because it broke off (an upstream error mid-stream, which
   * the sidecar rightly does not sign, docs/protocol.md "Signatures"), or that ran past the gateway's
   * own limits: that answer fails, nothing of it was released as verified, and the circuit stays as
   * it is. A cut is no forgery: whoever can cut the stream can deny service anyway (issue 21 item 11).
   */
  providerError(verdict: AnswerVerdict, meta: ExchangeMeta): SidecarError {
    this.counters.unsigned += 1;
    this.options.logger.warn(
      {
        event: 'provider_error',
        check: verdict.failedCheck,
        detail: verdict.detail,
        path: meta.path,
        stream: meta.stream,
      },
      `answer incomplete, left unsigned: ${verdict.failedCheck}`,
    );
    return new SidecarError(
      `the provider's answer is incomplete and unsigned: ${verdict.detail ?? verdict.failedCheck}`,
      {
        status: 502,
        code: 'upstream_incomplete',
        type: 'upstream_error',
      },
    );
  }

  /** Counts and logs a failed answer, opens the circuit (onFailure 'refuse'), and returns the user's error. */
  failed(verdict: AnswerVerdict, meta: ExchangeMeta): SidecarError {
    const { logger, onFailure, now } = this.options;
    this.counters.failed += 1;
    logger.warn(
      {
        event: 'verification',
        ok: false,
        check: verdict.failedCheck,
        detail: verdict.detail,
        id: verdict.id,
        path: meta.path,
        stream: meta.stream,
      },
      `answer failed verification: ${verdict.failedCheck}`,
    );
    if (onFailure === 'refuse' && !this.open.open) {
      this.open = {
        open: true,
        ...(verdict.failedCheck === undefined ? {} : { check: verdict.failedCheck }),
        since: now(),
        ...(verdict.id === undefined ? {} : { answerId: verdict.id }),
        ...(verdict.detail === undefined ? {} : { detail: verdict.detail }),
      };
      logger.warn(
        { event: 'circuit', check: verdict.failedCheck },
        'circuit opened: requests refused until the next attestation passes',
      );
    }
    if (verdict.failedCheck?.endsWith('.signer') === true) this.signerDoubted(verdict.failedCheck);
    return new SidecarError(`the provider's answer failed verification: ${verdict.failedCheck}`, {
      status: 502,
      code: 'verification_failed',
      type: 'upstream_error',
    });
  }

  /** Counts and logs a verified answer and writes its receipt (a receipt not written is logged, not fatal). */
  async verified(verdict: AnswerVerdict, a: Attestation, meta: ExchangeMeta): Promise<void> {
    const { logger } = this.options;
    this.counters.verified += 1;
    // Debug, not info: a line per answer cost ~10% of the gateway's CPU per answer (BENCHMARKS.md);
    // failures are warnings, and the status page, /health and the receipts count every answer.
    logger.debug(
      { event: 'verification', ok: true, id: verdict.id, path: meta.path, stream: meta.stream },
      'answer verified',
    );
    const receipt = this.receiptOf(verdict, a, meta);
    if (receipt === undefined) return;
    try {
      await this.options.receipts.add(receipt, a);
    } catch (error) {
      logger.error({ err: (error as Error).message }, 'receipt not written');
    }
  }

  /** The receipt of a verified answer; none without a response id, a signature record or a signer. */
  private receiptOf(verdict: AnswerVerdict, a: Attestation, meta: ExchangeMeta): Receipt | undefined {
    if (verdict.id === undefined || verdict.record === undefined || a.signer === undefined) return undefined;
    return {
      type: 'receipt',
      v: 1,
      time: new Date(this.options.now()).toISOString(),
      id: verdict.id,
      ...(meta.model === undefined ? {} : { model: meta.model }),
      path: meta.path,
      stream: meta.stream,
      request_sha256: verdict.requestSha256,
      response_sha256: verdict.responseSha256,
      request_hash_compared: this.options.link.requestHashComparable,
      text: verdict.record.text,
      signature: verdict.record.signature,
      signing_address: a.signer.address,
      signing_algo: a.signer.algo,
      checks: verdict.checks.map((c) => ({ id: c.id, status: c.status })),
      attestation: {
        nonce: a.nonce,
        quote_sha256: a.quoteSha256 ?? null,
        at: new Date(a.at).toISOString(),
        source: a.source,
        fresh: a.fresh,
        ...(a.fresh ? {} : { not_fresh: BROKER_QUOTE_NOT_FRESH }),
      },
    };
  }
}
