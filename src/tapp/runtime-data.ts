import { sha512 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { toHex } from '../bytes/index.js';

/**
 * 0G Tapp's runtime_data scheme (docs/platforms.md, 0G Tapp row; 0g-tapp `tapp-common/src/report_data.rs`).
 *
 * An app cannot choose a Tapp quote's report_data. It passes a `nonce` (≤ 64 bytes) to GetEvidence;
 * Tapp builds `runtime_data`, the compact JSON
 *   {"nonce":"0x<hex of the nonce>","signer":"0x<app signer address>","tls_public_key":"0x…"}
 * (serde field order; `nonce` and `tls_public_key` omitted when empty, `signer` always present),
 * sets report_data = sha512(runtime_data bytes), and returns runtime_data base64-encoded in the
 * evidence next to the quote. Our 64 report_data bytes (docs/protocol.md, report_data) are that nonce.
 *
 * Verifiers hash runtime_data exactly as transmitted and read fields out of it; nothing here
 * re-serializes a received runtime_data. `buildRuntimeData` only mirrors Tapp's serializer for tests
 * and documentation.
 */

/** Tapp's MAX_NONCE_LEN. */
export const TAPP_MAX_NONCE_BYTES = 64;

/** The name under which a report states this scheme (QuoteResult.reportDataScheme). */
export const TAPP_REPORT_DATA_SCHEME = 'tapp-runtime-data-sha512' as const;

const prefixedHex = z.string().regex(/^0x(?:[0-9a-fA-F]{2})*$/, 'expected 0x-prefixed hex');

export const runtimeDataSchema = z.looseObject({
  nonce: prefixedHex.optional(),
  signer: prefixedHex,
  tls_public_key: prefixedHex.optional(),
});
export type RuntimeData = z.output<typeof runtimeDataSchema>;

/** What Tapp serializes for a signer and nonce (its `RuntimeData::new(..).seal()`), as a string. */
export const buildRuntimeData = (fields: {
  signer: Uint8Array;
  nonce?: Uint8Array;
  tlsPublicKeySha256?: Uint8Array;
}): string => {
  if (fields.signer.length !== 20)
    throw new RangeError(`"signer" expected 20 bytes, got length=${fields.signer.length}`);
  const nonce = fields.nonce ?? new Uint8Array(0);
  if (nonce.length > TAPP_MAX_NONCE_BYTES) {
    throw new RangeError(
      `"nonce" expected at most ${TAPP_MAX_NONCE_BYTES} bytes, got length=${nonce.length}`,
    );
  }
  const out: Record<string, string> = {};
  if (nonce.length > 0) out['nonce'] = `0x${toHex(nonce)}`;
  out['signer'] = `0x${toHex(fields.signer)}`;
  if (fields.tlsPublicKeySha256 !== undefined && fields.tlsPublicKeySha256.length > 0) {
    out['tls_public_key'] = `0x${toHex(fields.tlsPublicKeySha256)}`;
  }
  return JSON.stringify(out);
};

/** report_data = sha512(runtime_data bytes as transmitted). */
export const reportDataOfRuntimeData = (runtimeData: Uint8Array | string): Uint8Array =>
  sha512(typeof runtimeData === 'string' ? new TextEncoder().encode(runtimeData) : runtimeData);

export class RuntimeDataError extends Error {
  override readonly name = 'RuntimeDataError';
}

/**
 * Checks that `runtimeData` is what the quote committed to and that it carries our nonce, and returns
 * its fields. Fails closed: throws RuntimeDataError (messages carry no values) on any mismatch.
 */
export const checkRuntimeData = (options: {
  runtimeData: Uint8Array;
  quoteReportData: Uint8Array;
  nonce: Uint8Array;
}): RuntimeData => {
  const expected = reportDataOfRuntimeData(options.runtimeData);
  if (Buffer.compare(Buffer.from(expected), Buffer.from(options.quoteReportData)) !== 0) {
    throw new RuntimeDataError("sha512(runtime_data) does not equal the quote's report_data");
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(options.runtimeData));
  } catch {
    throw new RuntimeDataError('runtime_data is not UTF-8 JSON');
  }
  const parsed = runtimeDataSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RuntimeDataError(
      `runtime_data is malformed${issue === undefined ? '' : ` at ${issue.path.join('.')}`}`,
    );
  }
  const echoed = parsed.data.nonce?.slice(2).toLowerCase();
  if (echoed !== toHex(options.nonce)) throw new RuntimeDataError('runtime_data does not carry our nonce');
  return parsed.data;
};
