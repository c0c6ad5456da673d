import { SidecarError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { BROKER_QUOTE_NOT_FRESH } from '../verifier/index.js';
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
  private open: Circuit = { open: false };
  private reach: Reachability | undefined;

  constructor(private readonly options: GatewayStateOptions) {}

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

  /** Records a call that reached the provider (whatever it answered). */
  providerReached(): void {
    this.reach = { ok: true, at: this.options.now() };
  }

  /** Records a call that did not reach the provider; `since` stays at the first of a run of failures. */
  providerUnreachable(detail: string): void {
    const at = this.options.now();
    const since = this.reach?.ok === false ? (this.reach.since ?? at) : at;
    this.reach = { ok: false, at, since, detail };
  }

  /** Runs an attestation; a passed one closes the circuit. */
  async attestNow(): Promise<Attestation> {
    const a = await this.options.attestor.attest();
    // report.fetch is the one check that fails when the report never came (attestor.ts).
    if (a.failedCheck === 'report.fetch')
      this.providerUnreachable(a.checks.find((c) => c.id === 'report.fetch')?.detail ?? 'request failed');
    else this.providerReached();
    if (a.ok) {
      this.counters.attestationsPassed += 1;
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
      return {
        refusal: new SidecarError(`the provider is not attested: ${check}`, {
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
    logger.info(
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
