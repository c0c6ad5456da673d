import { open } from 'node:fs/promises';
import { sha256 } from '@noble/hashes/sha2.js';
import { toHex } from '../bytes/index.js';
import { parseSignedText } from '../signatures/index.js';
import {
  BROKER_QUOTE_NOT_FRESH,
  type SigningAlgo,
  verifyReport,
  verifySignedText,
} from '../verifier/index.js';
import type { Attestation } from './attestor.js';

/**
 * One line of the receipts file per verified answer. Hashes, ids and signatures only: never a
 * prompt or a completion (the hashes let a user who kept their own copy prove what they got).
 */
export interface Receipt {
  type: 'receipt';
  v: 1;
  time: string;
  id: string;
  model?: string;
  path: string;
  stream: boolean;
  request_sha256: string;
  response_sha256: string;
  /** False when a hop re-serialized the request (0G broker): only the response half was compared. */
  request_hash_compared: boolean;
  text: string;
  signature: string;
  signing_address: string;
  signing_algo: SigningAlgo;
  /** The checks this answer passed (`signature.json.text`, `signature.json.signer`, ...). */
  checks: Array<{ id: string; status: string }>;
  /**
   * The attestation it was checked against; its report and check results are on its own line.
   * `fresh: false` (with `not_fresh`): the report did not answer that nonce (a 0G broker's static
   * quote, accepted by the policy's acceptBrokerQuote).
   */
  attestation: {
    nonce: string;
    quote_sha256: string | null;
    at: string;
    source: string;
    fresh: boolean;
    not_fresh?: string;
  };
}

/**
 * One line per passing attestation, before the receipts checked against it: the report itself, so
 * `receipts verify` can re-check the binding (quote report_data = key ‖ nonce) offline.
 */
export interface AttestationLine {
  type: 'attestation';
  v: 1;
  time: string;
  nonce: string;
  quote_sha256: string | null;
  source: string;
  /** False: a 0G broker's static quote, not made for `nonce` (acceptBrokerQuote); `not_fresh` says so. */
  fresh: boolean;
  not_fresh?: string;
  /** https (direct mode): the attested TLS key (SPKI sha256) answers were pinned to. */
  tls_fingerprint?: string;
  signing_address: string;
  signing_algo: SigningAlgo;
  checks: Array<{ id: string; status: string; simulated?: true }>;
  report: unknown;
}

/** Where lines go; the file sink appends, tests may collect. */
export interface ReceiptSink {
  append(line: string): Promise<void>;
  close(): Promise<void>;
}

/** Appends to a file opened once in append mode (O_APPEND: lines from one write() stay whole). */
export const fileReceiptSink = async (path: string): Promise<ReceiptSink> => {
  const handle = await open(path, 'a', 0o600);
  return {
    append: async (line) => {
      await handle.write(line);
    },
    close: () => handle.close(),
  };
};

export const attestationLineOf = (a: Attestation): AttestationLine => ({
  type: 'attestation',
  v: 1,
  time: new Date(a.at).toISOString(),
  nonce: a.nonce,
  quote_sha256: a.quoteSha256 ?? null,
  source: a.source,
  fresh: a.fresh,
  ...(a.fresh ? {} : { not_fresh: BROKER_QUOTE_NOT_FRESH }),
  ...(a.tlsFingerprint === undefined ? {} : { tls_fingerprint: a.tlsFingerprint }),
  signing_address: a.signer?.address ?? '',
  signing_algo: a.signer?.algo ?? 'ecdsa',
  checks: a.checks.map((c) => ({
    id: c.id,
    status: c.status,
    ...(c.simulated ? { simulated: true as const } : {}),
  })),
  report: a.report,
});

/** Keeps the last receipts for the status page and writes every line to the sink, in order. */
export class ReceiptLog {
  readonly recent: Receipt[] = [];
  private written = new Set<string>();
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private sink: ReceiptSink | undefined,
    private readonly keep = 20,
  ) {}

  /** Records an answer verified against `attestation` (its attestation line is written first, once). */
  add(receipt: Receipt, attestation: Attestation): Promise<void> {
    this.recent.unshift(receipt);
    this.recent.length = Math.min(this.recent.length, this.keep);
    const key = `${attestation.nonce}`;
    const lines: string[] = [];
    if (!this.written.has(key)) {
      this.written.add(key);
      lines.push(`${JSON.stringify(attestationLineOf(attestation))}\n`);
    }
    lines.push(`${JSON.stringify(receipt)}\n`);
    const sink = this.sink;
    if (sink === undefined) return Promise.resolve();
    this.chain = this.chain.then(() => sink.append(lines.join('')));
    return this.chain;
  }

  /** Resolves when every line so far is written. */
  flush(): Promise<void> {
    return this.chain;
  }

  async close(): Promise<void> {
    await this.chain;
    const sink = this.sink;
    this.sink = undefined;
    await sink?.close();
  }
}

export interface ReceiptVerdict {
  line: number;
  type: 'receipt' | 'attestation' | 'unknown';
  id?: string;
  ok: boolean;
  problems: string[];
}

const HEX64 = /^[0-9a-f]{64}$/;
const lower = (hex: string): string => hex.replace(/^0x/i, '').toLowerCase();
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The report checks that need nothing outside the report: what `receipts verify` re-runs offline. */
const OFFLINE_CHECKS = ['report.shape', 'report.nonce', 'report.signing-key', 'tdx.report-data'];
/** The same for a line marked not fresh (a 0G broker's static quote): the quote binds the address alone. */
const OFFLINE_CHECKS_NOT_FRESH = ['report.shape', 'report.signing-key', 'tdx.report-data.broker-address'];

/**
 * Checks an attestation line: the recorded checks passed, the quote is the recorded one, and the
 * verifier's own offline checks (report answers the nonce; the quote's report_data binds the key and
 * the nonce, in whichever scheme the report names) pass again.
 */
const checkAttestationLine = async (a: Record<string, unknown>): Promise<string[]> => {
  const problems: string[] = [];
  const report = a['report'] as Record<string, unknown> | undefined;
  const nonce = str(a['nonce']);
  const address = str(a['signing_address']);
  const algo = a['signing_algo'];
  if (nonce === undefined || !HEX64.test(nonce)) return ['nonce is not 64 lowercase hex'];
  if (address === undefined || (algo !== 'ecdsa' && algo !== 'ed25519'))
    return ['signing key or algorithm missing'];
  if (!Array.isArray(a['checks']) || a['checks'].length === 0) problems.push('no check results recorded');
  else {
    const failed = (a['checks'] as Array<{ id?: unknown; status?: unknown }>).filter(
      (c) => c.status === 'fail',
    );
    if (failed.length > 0)
      problems.push(`recorded checks failed: ${failed.map((c) => String(c.id)).join(', ')}`);
  }
  const quoteHex = str(report?.['intel_quote']);
  if (quoteHex === undefined || !/^(0x)?([0-9a-fA-F]{2})+$/.test(quoteHex)) {
    problems.push('the attestation line holds no report with a quote');
    return problems;
  }
  if (lower(str(report?.['signing_address']) ?? '') !== lower(address))
    problems.push('report.signing_address is not the recorded signing address');
  const quote = new Uint8Array(Buffer.from(lower(quoteHex), 'hex'));
  if (toHex(sha256(quote)) !== a['quote_sha256'])
    problems.push('sha256 of the quote is not the recorded quote_sha256');
  const time = Date.parse(str(a['time']) ?? '');
  const notFresh = a['fresh'] === false;
  const result = await verifyReport(report, {
    acceptBrokerQuote: notFresh,
    nonce,
    nowSeconds: Math.floor((Number.isFinite(time) ? time : 0) / 1000),
    signingAlgo: algo,
    offline: true,
    allowNoGpu: true,
    allowSimulated: true,
    // Offline: Intel collateral is not fetched; tdx.quote is as recorded.
    getCollateral: () => Promise.reject(new Error('offline')),
  });
  const required = notFresh ? OFFLINE_CHECKS_NOT_FRESH : OFFLINE_CHECKS;
  for (const id of required) {
    const c = result.checks.find((r) => r.id === id);
    if (c === undefined) problems.push(`${id}: not run`);
    else if (c.status !== 'pass') problems.push(`${c.id}: ${c.detail}`);
  }
  return problems;
};

/**
 * Re-checks a receipts file offline: every attestation line's quote binds its key and nonce and its
 * recorded checks passed; every receipt's text is its two hashes, its signature verifies for its
 * signing address, and it names an attestation line of the file with the same key.
 * (Intel collateral and NRAS are not consulted: those checks are as recorded at the time.)
 */
export const verifyReceipts = async (
  text: string,
): Promise<{ ok: boolean; receipts: number; attestations: number; verdicts: ReceiptVerdict[] }> => {
  const attestations = new Map<string, Record<string, unknown>>();
  const verdicts: ReceiptVerdict[] = [];
  let receipts = 0;
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = index + 1;
    if (raw.trim() === '') continue;
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(raw) as Record<string, unknown>;
      if (typeof value !== 'object' || value === null) throw new Error('not an object');
    } catch {
      verdicts.push({ line, type: 'unknown', ok: false, problems: ['not a JSON object'] });
      continue;
    }
    if (value['type'] === 'attestation') {
      const problems = await checkAttestationLine(value);
      if (problems.length === 0) attestations.set(`${value['nonce']}`, value);
      verdicts.push({ line, type: 'attestation', ok: problems.length === 0, problems });
      continue;
    }
    if (value['type'] !== 'receipt') {
      verdicts.push({
        line,
        type: 'unknown',
        ok: false,
        problems: ['neither a receipt nor an attestation line'],
      });
      continue;
    }
    receipts += 1;
    const problems: string[] = [];
    const id = str(value['id']);
    const req = str(value['request_sha256']) ?? '';
    const res = str(value['response_sha256']) ?? '';
    const signed = str(value['text']) ?? '';
    const address = str(value['signing_address']) ?? '';
    const algo = value['signing_algo'];
    if (!HEX64.test(req) || !HEX64.test(res))
      problems.push('request/response sha256 are not 64 lowercase hex');
    const parsed = parseSignedText(signed);
    const signedReq = parsed?.requestHash;
    const signedRes = parsed?.responseHash;
    if (parsed === undefined) problems.push('signed text is not two sha256 hex digests joined by ":"');
    else if (signedRes !== res) problems.push('signed text does not end with the response sha256');
    if (value['request_hash_compared'] !== false && signedReq !== req)
      problems.push('signed text does not start with the request sha256');
    if (algo !== 'ecdsa' && algo !== 'ed25519') problems.push('unknown signing_algo');
    else {
      const verdict = verifySignedText(algo, signed, str(value['signature']) ?? '', address);
      if (!verdict.ok) problems.push(`signature: ${verdict.reason ?? 'does not verify'}`);
    }
    const ref = value['attestation'] as Record<string, unknown> | undefined;
    const attestation = attestations.get(`${ref?.['nonce']}`);
    if (attestation === undefined) problems.push('names no verified attestation line earlier in the file');
    else {
      if (attestation['quote_sha256'] !== ref?.['quote_sha256'])
        problems.push('quote_sha256 differs from its attestation line');
      if (lower(str(attestation['signing_address']) ?? '') !== lower(address))
        problems.push('signed by another key than its attestation line attested');
    }
    verdicts.push({
      line,
      type: 'receipt',
      ...(id === undefined ? {} : { id }),
      ok: problems.length === 0,
      problems,
    });
  }
  return {
    ok: verdicts.every((v) => v.ok) && verdicts.length > 0,
    receipts,
    attestations: attestations.size,
    verdicts,
  };
};
