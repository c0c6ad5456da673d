import { sha256 } from '@noble/hashes/sha2.js';
import { toHex } from '../bytes/index.js';
import { parseSignedText } from '../signatures/index.js';
import { type Collateral, parseCollateral, verifyQuoteSignatures } from '../tdx/index.js';
import {
  type CheckResult,
  type MeasurementAllowLists,
  TCB_STATUSES,
  verifyReport,
  verifySignedText,
} from '../verifier/index.js';
import { bareHex } from './bare-hex.js';
import type { ReceiptLink } from './receipts.js';

/**
 * `receipts verify`: re-checks a gateway receipts file offline (README.md, "Receipts";
 * SECURITY.md, "Receipts"). Nothing in the file is taken on its word: the quote's own signatures
 * up to Intel's root, the report_data binding (the verifier's own check), the recorded collateral
 * (TCB status at the recorded time) and every receipt's signature are re-computed, and what could
 * not be re-checked is said per line and in the summary.
 */

export interface ReceiptVerdict {
  line: number;
  type: 'receipt' | 'attestation' | 'unknown';
  id?: string;
  ok: boolean;
  /** The quote behind this line does not chain to Intel (passes only with allowSimulated). */
  simulated?: true;
  problems: string[];
  /** What a PASS of this line does not cover. */
  notChecked: string[];
  /** What was re-checked beyond the signatures (e.g. the TCB status at the recorded time). */
  checked: string[];
}

export interface ReceiptsVerification {
  ok: boolean;
  receipts: number;
  attestations: number;
  /** Some passing line rests on a simulated quote (only with allowSimulated). */
  simulated: boolean;
  /** Every distinct "not checked" statement of the passing lines. */
  notChecked: string[];
  verdicts: ReceiptVerdict[];
}

export interface VerifyReceiptsOptions {
  /** Accept quotes that do not chain to Intel (simulated runs); every such line says SIMULATED. */
  allowSimulated?: boolean;
  /**
   * MRTD / RTMR allow-lists and the expected Dstack compose hash: without them, a genuine quote from
   * any TD (one its owner built to sign what they like) passes, so the summary says they were not compared.
   */
  allow?: MeasurementAllowLists;
  expectedComposeHash?: string;
}

/** The "not checked" statements, one place for their wording. */
export const NOT_CHECKED = {
  requestHash: 'request hash not compared (0G broker re-serializes requests)',
  tcb: 'TCB status not re-checked (no collateral recorded)',
  nras: 'GPU evidence not re-appraised by NRAS (NRAS answers are not recorded)',
  noGpu: 'no GPU evidence in the report',
  measurements:
    'measurements (MRTD, RTMRs, compose hash) not compared with allow-lists (--mrtd, --compose-hash, ...)',
  notFresh: "quote not made for this nonce (0G broker's static quote: binds the address only)",
  recorded:
    'id, path, stream and time are as recorded: the signature covers only the request and response sha256 (and the model in the model format); the id is inside the signed response bytes, which the file does not keep',
  model: 'model as recorded (the signed text names no model: hashes format)',
} as const;

const HEX64 = /^[0-9a-f]{64}$/;
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The report checks that need nothing outside the report: what `receipts verify` re-runs offline. */
const OFFLINE_CHECKS = ['report.shape', 'report.nonce', 'report.signing-key', 'tdx.debug', 'tdx.report-data'];
/** The same for a line marked not fresh (a 0G broker's static quote): the quote binds the address alone. */
const OFFLINE_CHECKS_NOT_FRESH = [
  'report.shape',
  'report.signing-key',
  'tdx.debug',
  'tdx.report-data.broker-address',
];

interface LineFacts {
  problems: string[];
  notChecked: string[];
  checked: string[];
  simulated: boolean;
}

/** The recorded link mode (receipts.ts AttestationLine.link); undefined in files written before it. */
const linkOf = (a: Record<string, unknown>): ReceiptLink | 'malformed' | undefined => {
  const link = a['link'];
  if (link === undefined) return undefined;
  if (typeof link !== 'object' || link === null) return 'malformed';
  const { mode, request_hash_compared: compared } = link as Record<string, unknown>;
  if ((mode !== 'direct' && mode !== '0g') || typeof compared !== 'boolean') return 'malformed';
  return { mode, request_hash_compared: compared };
};

/** The line's own fields: nonce, key, recorded checks, a quote whose sha256 is the recorded one. */
const readAttestationLine = (
  a: Record<string, unknown>,
  facts: LineFacts,
): { quote: Uint8Array; report: Record<string, unknown>; at: number } | undefined => {
  const report = a['report'] as Record<string, unknown> | undefined;
  const nonce = str(a['nonce']);
  const address = str(a['signing_address']);
  const algo = a['signing_algo'];
  const at = Math.floor(Date.parse(str(a['time']) ?? '') / 1000);
  if (nonce === undefined || !HEX64.test(nonce)) facts.problems.push('nonce is not 64 lowercase hex');
  if (address === undefined || (algo !== 'ecdsa' && algo !== 'ed25519'))
    facts.problems.push('signing key or algorithm missing');
  if (!Number.isSafeInteger(at) || at < 0) facts.problems.push('time is not an ISO date');
  const link = linkOf(a);
  if (link === 'malformed') facts.problems.push('link is not a direct or 0g mode with request_hash_compared');
  else if (link?.mode === 'direct' && !link.request_hash_compared)
    facts.problems.push('link: a direct-mode run compares request hashes');
  if (!Array.isArray(a['checks']) || a['checks'].length === 0)
    facts.problems.push('no check results recorded');
  else {
    const failed = (a['checks'] as Array<{ id?: unknown; status?: unknown }>).filter(
      (c) => c.status === 'fail',
    );
    if (failed.length > 0)
      facts.problems.push(`recorded checks failed: ${failed.map((c) => String(c.id)).join(', ')}`);
  }
  const quoteHex = str(report?.['intel_quote']);
  if (report === undefined || quoteHex === undefined || !/^(0x)?([0-9a-fA-F]{2})+$/.test(quoteHex)) {
    facts.problems.push('the attestation line holds no report with a quote');
    return undefined;
  }
  if (facts.problems.length > 0) return undefined;
  if (bareHex(str(report['signing_address']) ?? '') !== bareHex(address ?? ''))
    facts.problems.push('report.signing_address is not the recorded signing address');
  const quote = new Uint8Array(Buffer.from(bareHex(quoteHex), 'hex'));
  if (toHex(sha256(quote)) !== a['quote_sha256'])
    facts.problems.push('sha256 of the quote is not the recorded quote_sha256');
  return { quote, report, at };
};

/**
 * The quote's signatures up to Intel's SGX Root CA (src/tdx/quote-signatures.ts), at the recorded
 * time. A quote that does not get there is not a TDX quote, whatever its fields say: it is
 * simulated (or forged), and passes only when simulation is allowed.
 */
const checkQuoteOrigin = (
  quote: Uint8Array,
  at: number,
  allowSimulated: boolean,
  facts: LineFacts,
): boolean => {
  try {
    const { fmspc } = verifyQuoteSignatures(quote, at);
    facts.checked.push(`quote signed up to Intel's SGX Root CA (FMSPC ${fmspc})`);
    return true;
  } catch (error) {
    const why = error instanceof Error ? error.message : 'unknown error';
    facts.simulated = true;
    if (!allowSimulated)
      facts.problems.push(
        `quote is not signed up to Intel's SGX Root CA (${why}): a simulated or forged quote (--allow-simulated accepts simulated runs)`,
      );
    return false;
  }
};

/** The recorded collateral, if any, in dcap-qvl's shape; a malformed one is a problem. */
const recordedCollateral = (a: Record<string, unknown>, facts: LineFacts): Collateral | undefined => {
  if (a['collateral'] === undefined) return undefined;
  try {
    return parseCollateral(a['collateral']);
  } catch (error) {
    facts.problems.push(`recorded collateral: ${(error as Error).message}`);
    return undefined;
  }
};

/** The verifier's GPU checks, re-run offline: evidence nonces, signatures and chains; NRAS is not. */
const judgeGpu = (checks: CheckResult[], allowSimulated: boolean, facts: LineFacts): void => {
  const gpu = checks.filter((c) => c.id.startsWith('gpu.') && c.id !== 'gpu.nras');
  if (gpu.every((c) => c.status === 'skip')) {
    facts.notChecked.push(NOT_CHECKED.noGpu);
    return;
  }
  for (const c of gpu.filter((g) => g.status === 'fail')) facts.problems.push(`${c.id}: ${c.detail}`);
  if (gpu.some((c) => c.simulated === true)) {
    facts.simulated = true;
    if (!allowSimulated) facts.problems.push('GPU evidence is simulated');
  }
  facts.notChecked.push(NOT_CHECKED.nras);
};

/** The caller's allow-lists, when given, must hold; otherwise the line says they were not compared. */
const judgeMeasurements = (checks: CheckResult[], options: VerifyReceiptsOptions, facts: LineFacts): void => {
  const allow = options.allow ?? {};
  const given = [allow.mrtd, allow.rtmr0, allow.rtmr1, allow.rtmr2].some(
    (l) => l !== undefined && l.length > 0,
  );
  const wanted = [...(given ? ['tdx.measurements'] : [])];
  if (options.expectedComposeHash !== undefined) wanted.push('dstack.compose-hash');
  if (wanted.length === 0) {
    facts.notChecked.push(NOT_CHECKED.measurements);
    return;
  }
  for (const id of wanted) {
    const c = checks.find((r) => r.id === id);
    if (c?.status === 'pass') facts.checked.push(`${id}: ${c.detail}`);
    else facts.problems.push(`${id}: ${c?.detail ?? 'not run'}`);
  }
};

/**
 * Checks an attestation line: its own fields, the quote's signatures to Intel's root, the
 * verifier's offline checks (the report answers the nonce; report_data binds the key and the
 * nonce, in whichever scheme the report names), and, with recorded collateral, full DCAP
 * verification with the TCB status at the recorded time.
 */
const checkAttestationLine = async (
  a: Record<string, unknown>,
  options: VerifyReceiptsOptions,
): Promise<LineFacts> => {
  const allowSimulated = options.allowSimulated === true;
  const facts: LineFacts = { problems: [], notChecked: [], checked: [], simulated: false };
  const read = readAttestationLine(a, facts);
  if (read === undefined) return facts;
  const real = checkQuoteOrigin(read.quote, read.at, allowSimulated, facts);
  const collateral = recordedCollateral(a, facts);
  const notFresh = a['fresh'] === false;
  const result = await verifyReport(read.report, {
    acceptBrokerQuote: notFresh,
    nonce: str(a['nonce']) ?? '',
    nowSeconds: read.at,
    signingAlgo: a['signing_algo'] === 'ed25519' ? 'ed25519' : 'ecdsa',
    offline: true,
    allowNoGpu: true,
    allowSimulated: true,
    // Any status dcap-qvl accepts is reported; which ones were acceptable was the gateway's policy.
    acceptTcb: TCB_STATUSES,
    ...(collateral === undefined ? {} : { collateral }),
    getCollateral: () => Promise.reject(new Error('no collateral recorded')),
    ...(options.allow === undefined ? {} : { allow: options.allow }),
    ...(options.expectedComposeHash === undefined
      ? {}
      : { expectedComposeHash: options.expectedComposeHash }),
  });
  // The receipts are checked against the line's signing_address: it must be the key the quote binds.
  if (bareHex(result.signingAddress ?? '') !== bareHex(str(a['signing_address']) ?? ''))
    facts.problems.push('the recorded signing address is not the key the report attests');
  for (const id of notFresh ? OFFLINE_CHECKS_NOT_FRESH : OFFLINE_CHECKS) {
    const c = result.checks.find((r) => r.id === id);
    if (c === undefined) facts.problems.push(`${id}: not run`);
    else if (c.status !== 'pass') facts.problems.push(`${c.id}: ${c.detail}`);
  }
  const tcb = result.checks.find((c) => c.id === 'tdx.quote');
  if (real && collateral !== undefined) {
    if (tcb?.status === 'pass') facts.checked.push(`DCAP with the recorded collateral: ${tcb.detail}`);
    else facts.problems.push(`tdx.quote with the recorded collateral: ${tcb?.detail ?? 'not run'}`);
  } else if (real) facts.notChecked.push(NOT_CHECKED.tcb);
  judgeGpu(result.checks, allowSimulated, facts);
  judgeMeasurements(result.checks, options, facts);
  if (notFresh) facts.notChecked.push(NOT_CHECKED.notFresh);
  return facts;
};

/** A receipt's own proof: its text is its two hashes, signed by its key, under a verified attestation. */
const checkReceipt = (
  value: Record<string, unknown>,
  attestation: Record<string, unknown> | undefined,
): string[] => {
  const problems: string[] = [];
  const req = str(value['request_sha256']) ?? '';
  const res = str(value['response_sha256']) ?? '';
  const signed = str(value['text']) ?? '';
  const address = str(value['signing_address']) ?? '';
  const algo = value['signing_algo'];
  const compared = value['request_hash_compared'];
  if (!HEX64.test(req) || !HEX64.test(res)) problems.push('request/response sha256 are not 64 lowercase hex');
  if (typeof compared !== 'boolean') problems.push('request_hash_compared is not true or false');
  const parsed = parseSignedText(signed);
  if (parsed === undefined) problems.push('signed text is not two sha256 hex digests joined by ":"');
  else if (parsed.responseHash !== res) problems.push('signed text does not end with the response sha256');
  if (compared !== false && parsed?.requestHash !== req)
    problems.push('signed text does not start with the request sha256');
  // The model format signs the model name (docs/protocol.md, Signed text): the recorded one must match.
  if (parsed?.model !== undefined && value['model'] !== undefined && value['model'] !== parsed.model)
    problems.push('model is not the model named in its signed text');
  if (algo !== 'ecdsa' && algo !== 'ed25519') problems.push('unknown signing_algo');
  else {
    const verdict = verifySignedText(algo, signed, str(value['signature']) ?? '', address);
    if (!verdict.ok) problems.push(`signature: ${verdict.reason ?? 'does not verify'}`);
  }
  if (attestation === undefined) {
    problems.push('names no verified attestation line earlier in the file');
    return problems;
  }
  return [...problems, ...againstAttestation(value, attestation)];
};

/** What a receipt says about its attestation must be what that line recorded (key, quote, link mode). */
const againstAttestation = (
  value: Record<string, unknown>,
  attestation: Record<string, unknown>,
): string[] => {
  const problems: string[] = [];
  const ref = value['attestation'] as Record<string, unknown> | undefined;
  if (attestation['quote_sha256'] !== ref?.['quote_sha256'])
    problems.push('quote_sha256 differs from its attestation line');
  if (bareHex(str(attestation['signing_address']) ?? '') !== bareHex(str(value['signing_address']) ?? ''))
    problems.push('signed by another key than its attestation line attested');
  // A gateway run either compares request hashes (direct link) or cannot (0G broker): the line says
  // which. A receipt that did not compare is accepted only under a line that records it could not.
  const link = linkOf(attestation);
  const compared = value['request_hash_compared'];
  if (typeof compared !== 'boolean' || link === 'malformed') return problems;
  if (link === undefined) {
    if (!compared)
      problems.push('request_hash_compared is false but its attestation line records no link mode');
  } else if (link.request_hash_compared !== compared)
    problems.push(`request_hash_compared differs from its attestation line (link mode ${link.mode})`);
  return problems;
};

const parseLine = (raw: string): Record<string, unknown> | undefined => {
  try {
    const value = JSON.parse(raw) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
};

/**
 * Re-checks a receipts file offline. A line passes only on what was re-computed here; each verdict
 * lists what it does not cover (`notChecked`), and the result gathers them.
 */
export const verifyReceipts = async (
  text: string,
  options: VerifyReceiptsOptions = {},
): Promise<ReceiptsVerification> => {
  const attestations = new Map<string, { line: Record<string, unknown>; simulated: boolean }>();
  const ids = new Map<string, number>();
  const verdicts: ReceiptVerdict[] = [];
  let receipts = 0;
  for (const [index, raw] of text.split('\n').entries()) {
    const line = index + 1;
    if (raw.trim() === '') continue;
    const value = parseLine(raw);
    if (value === undefined) {
      verdicts.push({
        line,
        type: 'unknown',
        ok: false,
        problems: ['not a JSON object'],
        notChecked: [],
        checked: [],
      });
      continue;
    }
    if (value['type'] === 'attestation') {
      const facts = await checkAttestationLine(value, options);
      const ok = facts.problems.length === 0;
      if (ok) attestations.set(`${value['nonce']}`, { line: value, simulated: facts.simulated });
      verdicts.push(verdictOf(line, 'attestation', undefined, ok, facts));
      continue;
    }
    if (value['type'] !== 'receipt') {
      const problems = ['neither a receipt nor an attestation line'];
      verdicts.push({ line, type: 'unknown', ok: false, problems, notChecked: [], checked: [] });
      continue;
    }
    receipts += 1;
    verdicts.push(receiptVerdict(line, value, attestations, ids));
  }
  const passing = verdicts.filter((v) => v.ok);
  return {
    ok: verdicts.length > 0 && verdicts.every((v) => v.ok),
    receipts,
    attestations: attestations.size,
    simulated: passing.some((v) => v.simulated === true),
    notChecked: [...new Set(passing.flatMap((v) => v.notChecked))],
    verdicts,
  };
};

/** One receipt line's verdict; `ids` maps each id and response sha256 seen to its line. */
const receiptVerdict = (
  line: number,
  value: Record<string, unknown>,
  attestations: Map<string, { line: Record<string, unknown>; simulated: boolean }>,
  ids: Map<string, number>,
): ReceiptVerdict => {
  const ref = value['attestation'] as Record<string, unknown> | undefined;
  const attestation = attestations.get(`${ref?.['nonce']}`);
  const problems = checkReceipt(value, attestation?.line);
  const id = str(value['id']);
  if (id === undefined || id === '') problems.push('id is missing');
  // One answer, one receipt: the gateway refuses an id it already accepted (accepted-ids.ts), and a
  // response's bytes (so its sha256) hold its id. A repeat of either was copied or edited.
  const seen = (key: string, what: string): void => {
    const first = ids.get(key);
    if (first !== undefined) problems.push(`${what} already recorded by line ${first}`);
    else ids.set(key, line);
  };
  if (id !== undefined && id !== '') seen(`id:${id}`, 'id');
  seen(`response:${str(value['response_sha256']) ?? ''}`, 'response_sha256');
  const notChecked: string[] = [NOT_CHECKED.recorded];
  if (parseSignedText(str(value['text']) ?? '')?.model === undefined && value['model'] !== undefined)
    notChecked.push(NOT_CHECKED.model);
  if (value['request_hash_compared'] === false) notChecked.push(NOT_CHECKED.requestHash);
  const facts: LineFacts = { problems, notChecked, checked: [], simulated: attestation?.simulated === true };
  return verdictOf(line, 'receipt', id, problems.length === 0, facts);
};

const verdictOf = (
  line: number,
  type: 'receipt' | 'attestation',
  id: string | undefined,
  ok: boolean,
  facts: LineFacts,
): ReceiptVerdict => ({
  line,
  type,
  ...(id === undefined ? {} : { id }),
  ok,
  ...(facts.simulated ? { simulated: true as const } : {}),
  problems: facts.problems,
  notChecked: facts.notChecked,
  checked: facts.checked,
});
