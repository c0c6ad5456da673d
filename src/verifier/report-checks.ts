import type { SigningAlgo } from '../keys/index.js';
import { addressOfPublicKey, checksumAddress } from '../keys/index.js';
import type { CheckList } from './check-list.js';
import { type AttestationView, normalizeHex } from './report-shape.js';

const HEX_RE = /^[0-9a-f]*$/;

/** The attested signer: algorithm, what report_data binds ([0, 32) input), and how it is shown. */
export interface AttestedSigner {
  algo: SigningAlgo;
  /** ecdsa: the 20-byte address; ed25519: the 32-byte public key. */
  bytes: Uint8Array;
  /** ecdsa: EIP-55 address; ed25519: lowercase hex public key. */
  display: string;
  /**
   * The attested public key (ecdsa: 64-byte point without 04; ed25519: 32 bytes), lowercase hex, when
   * the report gives one: the key an end-to-end encrypted prompt is sealed to.
   */
  publicKey?: string;
}

/**
 * `report.nonce`: the report answers our nonce (docs/protocol.md: a nonce in the request always gets a
 * fresh quote for it). A report with another request_nonce is a replay of an older one.
 */
export const checkRequestNonce = (
  list: CheckList,
  report: AttestationView,
  nonceHex: string,
  hint = '',
): void => {
  const title = 'report answers our fresh nonce (replay protection)';
  if (normalizeHex(report.request_nonce) === nonceHex)
    list.pass('report.nonce', title, 'request_nonce equals our nonce');
  else
    list.fail(
      'report.nonce',
      title,
      `request_nonce is not the nonce we sent: a replayed or foreign report${hint}`,
    );
};

/**
 * `report.signing-key`: the signing address/public key fields are well formed and agree with each
 * other (docs/protocol.md: ecdsa address = Ethereum address of signing_public_key; ed25519 address = key).
 */
export const checkSigningKey = (
  list: CheckList,
  report: AttestationView,
  wanted: SigningAlgo | undefined,
): AttestedSigner | undefined => {
  const id = 'report.signing-key';
  const title = 'signing key fields are well formed and consistent';
  const algo = (report.signing_algo ?? 'ecdsa').toLowerCase();
  if (algo !== 'ecdsa' && algo !== 'ed25519') {
    list.fail(id, title, `unknown signing_algo (expected ecdsa or ed25519)`);
    return undefined;
  }
  if (wanted !== undefined && algo !== wanted) {
    list.fail(id, title, `report is for ${algo}, we asked for ${wanted}`);
    return undefined;
  }
  const address = normalizeHex(report.signing_address);
  const publicKey =
    report.signing_public_key === undefined ? undefined : normalizeHex(report.signing_public_key);
  if (algo === 'ecdsa') {
    if (address.length !== 40 || !HEX_RE.test(address)) {
      list.fail(id, title, 'ecdsa signing_address is not a 20-byte hex address');
      return undefined;
    }
    const bytes = new Uint8Array(Buffer.from(address, 'hex'));
    if (publicKey !== undefined) {
      const point = publicKey.length === 130 && publicKey.startsWith('04') ? publicKey : `04${publicKey}`;
      let derived: string;
      try {
        derived = Buffer.from(addressOfPublicKey(new Uint8Array(Buffer.from(point, 'hex')))).toString('hex');
      } catch {
        list.fail(id, title, 'signing_public_key is not a 64-byte secp256k1 point');
        return undefined;
      }
      if (derived !== address) {
        list.fail(id, title, 'signing_address is not the address of signing_public_key');
        return undefined;
      }
    }
    const display = checksumAddress(bytes);
    list.pass(id, title, `ecdsa ${display}${publicKey === undefined ? ' (no public key given)' : ''}`);
    const key =
      publicKey === undefined ? {} : { publicKey: publicKey.length === 130 ? publicKey.slice(2) : publicKey };
    return { algo, bytes, display, ...key };
  }
  if (address.length !== 64 || !HEX_RE.test(address)) {
    list.fail(id, title, 'ed25519 signing_address is not a 32-byte hex public key');
    return undefined;
  }
  if (publicKey !== undefined && publicKey !== address) {
    list.fail(id, title, 'ed25519 signing_public_key differs from signing_address');
    return undefined;
  }
  list.pass(id, title, `ed25519 public key ${address}`);
  return { algo, bytes: new Uint8Array(Buffer.from(address, 'hex')), display: address, publicKey: address };
};

/**
 * `signing.expected-address`: the attested address is the one registered elsewhere (0G's on-chain
 * `targetTeeAddress`). Case-insensitive (docs/protocol.md: EIP-55 in output, compared case-insensitively).
 */
export const checkExpectedAddress = (
  list: CheckList,
  signer: AttestedSigner | undefined,
  expected: string | undefined,
): void => {
  const id = 'signing.expected-address';
  const title = 'attested signing address is the expected one';
  if (expected === undefined) {
    list.skip(id, title, 'no expected address given (--expect-address)');
    return;
  }
  if (signer === undefined) {
    list.fail(id, title, 'no valid attested signing address');
    return;
  }
  if (normalizeHex(expected) === normalizeHex(signer.display))
    list.pass(id, title, `equals ${signer.display}`);
  else list.fail(id, title, `attested ${signer.display} is not the expected address`);
};

/** What the report and its evidence say about simulation, gathered before `report.simulated` is judged. */
export interface SimulationFacts {
  jsonFlags: string[];
  quoteMarkers: string[];
  gpuSynthetic: boolean;
}

/**
 * `report.simulated`: simulated reports (docs/architecture.md: "a verifier must reject it") fail unless the
 * caller allows simulation. Judged from the JSON labels AND the quote bytes AND the GPU chain, so
 * removing `"simulated": true` from the JSON does not hide it.
 */
export const checkSimulated = (list: CheckList, facts: SimulationFacts, allowSimulated: boolean): boolean => {
  const id = 'report.simulated';
  const title = 'report is not simulated';
  const reasons = [
    ...facts.jsonFlags,
    ...(facts.quoteMarkers.length > 0
      ? [`quote carries simulated markers (${facts.quoteMarkers.join(', ')})`]
      : []),
    ...(facts.gpuSynthetic ? ['GPU evidence chains to the synthetic test root'] : []),
  ];
  if (reasons.length === 0) {
    list.pass(id, title, 'no simulated labels in the JSON, the quote or the GPU chain');
    return false;
  }
  if (allowSimulated)
    list.pass(id, title, `SIMULATED, allowed by --allow-simulated: ${reasons.join('; ')}`, true);
  else list.fail(id, title, `SIMULATED report (proves nothing): ${reasons.join('; ')}`);
  return true;
};

/** JSON labels of a simulated report (src/attestation/report.ts). */
export const simulatedJsonFlags = (report: AttestationView): string[] => {
  const flags: string[] = [];
  if (report.simulated === true) flags.push('"simulated": true');
  if (report.platform === 'simulated') flags.push('platform "simulated"');
  if (report.gpu?.simulated === true) flags.push('"gpu.simulated": true');
  if (report.warning !== undefined && /simulated/i.test(report.warning)) flags.push('simulated warning');
  return flags;
};
