import { open } from 'node:fs/promises';
import { toHex } from '../bytes/index.js';
import type { Collateral } from '../tdx/index.js';
import { BROKER_QUOTE_NOT_FRESH, type SigningAlgo } from '../verifier/index.js';
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
  /**
   * How the gateway reached the provider: direct links compare every request hash with the bytes the
   * gateway sent; through 0G's broker (which re-serializes requests) they cannot. `receipts verify`
   * fails a receipt that says otherwise than its attestation line.
   */
  link?: ReceiptLink;
  /** https (direct mode): the attested TLS key (SPKI sha256) answers were pinned to. */
  tls_fingerprint?: string;
  signing_address: string;
  signing_algo: SigningAlgo;
  checks: Array<{ id: string; status: string; simulated?: true }>;
  report: unknown;
  /**
   * The Intel collateral (dcap-qvl `Collateral`, byte fields as hex) the quote was checked with at
   * `time`: `receipts verify` re-runs DCAP verification with it, TCB status included, at that time.
   */
  collateral?: Collateral;
}

/** The link mode an attestation line records (see AttestationLine.link). */
export interface ReceiptLink {
  mode: 'direct' | '0g';
  request_hash_compared: boolean;
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

/** dcap-qvl fetches byte fields as number arrays; the file keeps them as hex, as Intel's own files do. */
const hexCollateral = (c: Collateral): Collateral => {
  const hex = (v: string | number[]) => (typeof v === 'string' ? v : toHex(Uint8Array.from(v)));
  return {
    ...c,
    root_ca_crl: hex(c.root_ca_crl),
    pck_crl: hex(c.pck_crl),
    tcb_info_signature: hex(c.tcb_info_signature),
    qe_identity_signature: hex(c.qe_identity_signature),
  };
};

export const attestationLineOf = (a: Attestation, link?: ReceiptLink): AttestationLine => ({
  type: 'attestation',
  v: 1,
  time: new Date(a.at).toISOString(),
  nonce: a.nonce,
  quote_sha256: a.quoteSha256 ?? null,
  source: a.source,
  fresh: a.fresh,
  ...(a.fresh ? {} : { not_fresh: BROKER_QUOTE_NOT_FRESH }),
  ...(link === undefined ? {} : { link }),
  ...(a.tlsFingerprint === undefined ? {} : { tls_fingerprint: a.tlsFingerprint }),
  signing_address: a.signer?.address ?? '',
  signing_algo: a.signer?.algo ?? 'ecdsa',
  checks: a.checks.map((c) => ({
    id: c.id,
    status: c.status,
    ...(c.simulated ? { simulated: true as const } : {}),
  })),
  report: a.report,
  ...(a.collateral === undefined ? {} : { collateral: hexCollateral(a.collateral) }),
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
    const sink = this.sink;
    // Without a file (the bench, a client that keeps none) nothing is serialized.
    if (sink === undefined) return Promise.resolve();
    const key = `${attestation.nonce}`;
    const lines: string[] = [];
    if (!this.written.has(key)) {
      this.written.add(key);
      // The provider link's requestHashComparable (false only through 0G's broker) sets the mode.
      const compared = receipt.request_hash_compared;
      const link: ReceiptLink = { mode: compared ? 'direct' : '0g', request_hash_compared: compared };
      lines.push(`${JSON.stringify(attestationLineOf(attestation, link))}\n`);
    }
    lines.push(`${JSON.stringify(receipt)}\n`);
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
