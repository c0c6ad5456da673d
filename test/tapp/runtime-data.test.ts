import { describe, expect, it } from 'vitest';
import {
  buildRuntimeData,
  checkRuntimeData,
  RuntimeDataError,
  reportDataOfRuntimeData,
} from '../../src/tapp/index.js';
import { sha512 } from './tapp-server.js';

const SIGNER = new Uint8Array(20).fill(0xab);
const NONCE = Uint8Array.from({ length: 64 }, (_, i) => i);

describe('Tapp runtime_data', () => {
  it("serializes like Tapp's serde struct: field order nonce, signer, tls_public_key; empties omitted", () => {
    expect(buildRuntimeData({ signer: SIGNER })).toBe(`{"signer":"0x${'ab'.repeat(20)}"}`);
    expect(buildRuntimeData({ signer: SIGNER, nonce: Uint8Array.of(1, 2) })).toBe(
      `{"nonce":"0x0102","signer":"0x${'ab'.repeat(20)}"}`,
    );
    expect(
      buildRuntimeData({
        signer: SIGNER,
        nonce: Uint8Array.of(1),
        tlsPublicKeySha256: new Uint8Array(32).fill(0xcd),
      }),
    ).toBe(`{"nonce":"0x01","signer":"0x${'ab'.repeat(20)}","tls_public_key":"0x${'cd'.repeat(32)}"}`);
    expect(() => buildRuntimeData({ signer: SIGNER, nonce: new Uint8Array(65) })).toThrow(RangeError);
  });

  it('report_data is sha512 of the transmitted bytes (64 bytes)', () => {
    const text = buildRuntimeData({ signer: SIGNER, nonce: NONCE });
    expect(Buffer.from(reportDataOfRuntimeData(text))).toEqual(sha512(text));
    expect(reportDataOfRuntimeData(new TextEncoder().encode(text))).toHaveLength(64);
  });

  it('checkRuntimeData accepts the binding and returns the fields', () => {
    const text = `{"nonce":"0x${Buffer.from(NONCE).toString('hex').toUpperCase()}","signer":"0x${'ab'.repeat(20)}"}`;
    const fields = checkRuntimeData({
      runtimeData: new TextEncoder().encode(text),
      quoteReportData: sha512(text),
      nonce: NONCE,
    });
    expect(fields.signer).toBe(`0x${'ab'.repeat(20)}`);
  });

  it('checkRuntimeData refuses a wrong hash, a missing or other nonce, and non-JSON', () => {
    const text = buildRuntimeData({ signer: SIGNER, nonce: NONCE });
    const bytes = new TextEncoder().encode(text);
    expect(() =>
      checkRuntimeData({ runtimeData: bytes, quoteReportData: new Uint8Array(64), nonce: NONCE }),
    ).toThrow(/does not equal/);
    const other = buildRuntimeData({ signer: SIGNER, nonce: new Uint8Array(64) });
    expect(() =>
      checkRuntimeData({
        runtimeData: new TextEncoder().encode(other),
        quoteReportData: sha512(other),
        nonce: NONCE,
      }),
    ).toThrow(/does not carry our nonce/);
    const none = buildRuntimeData({ signer: SIGNER });
    expect(() =>
      checkRuntimeData({
        runtimeData: new TextEncoder().encode(none),
        quoteReportData: sha512(none),
        nonce: NONCE,
      }),
    ).toThrow(RuntimeDataError);
    expect(() =>
      checkRuntimeData({
        runtimeData: Uint8Array.of(0xff),
        quoteReportData: sha512(Buffer.of(0xff)),
        nonce: NONCE,
      }),
    ).toThrow(/not UTF-8 JSON/);
  });
});
