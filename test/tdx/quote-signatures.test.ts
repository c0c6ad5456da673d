import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseQuote } from '../../src/tdx/quote.js';
import {
  INTEL_SGX_ROOT_CA_SHA256,
  QuoteSignatureError,
  verifyQuoteSignatures,
} from '../../src/tdx/quote-signatures.js';
import { SimulatedQuoteProvider } from '../../src/tdx/simulated.js';
import { fixtureQuotes } from './fixture-quotes.js';

const FIXTURES = fixtureQuotes();
const MODEL = FIXTURES.find((f) => f.name.endsWith('model_intel_quote.bin'));
if (MODEL === undefined) throw new Error('fixture missing');

const signatureError = (quote: Uint8Array, at: number): QuoteSignatureError => {
  let caught: unknown;
  try {
    verifyQuoteSignatures(quote, at);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(QuoteSignatureError);
  return caught as QuoteSignatureError;
};

const flipped = (bytes: Uint8Array, offset: number): Uint8Array => {
  const copy = new Uint8Array(bytes);
  copy[offset] = (copy[offset] ?? 0) ^ 0x01;
  return copy;
};

/** Offset of the n-th PEM certificate's base64 body inside the quote, plus `into` characters. */
const inCertificate = (quote: Uint8Array, n: number, into: number): number => {
  const text = Buffer.from(quote).toString('latin1');
  let at = -1;
  for (let i = 0; i <= n; i += 1) at = text.indexOf('-----BEGIN CERTIFICATE-----', at + 1);
  expect(at).toBeGreaterThan(0);
  return at + '-----BEGIN CERTIFICATE-----\n'.length + into;
};

/** Changes one base64 letter to another letter, so the PEM still decodes. */
const flippedBase64 = (bytes: Uint8Array, offset: number): Uint8Array => {
  const copy = new Uint8Array(bytes);
  const c = copy[offset] ?? 0;
  copy[offset] = c === 0x41 ? 0x42 : 0x41;
  return copy;
};

describe('verifyQuoteSignatures (offline, no collateral)', () => {
  it.each(FIXTURES.map((f) => [f.name, f] as const))('a real Intel quote passes: %s', (_name, f) => {
    const result = verifyQuoteSignatures(f.bytes, f.nowSecs);
    expect(result.fmspc).toMatch(/^[0-9A-F]{12}$/);
  });

  it('pins Intel SGX Root CA by its SHA-256', () => {
    expect(INTEL_SGX_ROOT_CA_SHA256).toBe('44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3');
  });

  it('one flipped byte of the TD report fails the quote signature', () => {
    const parsed = parseQuote(MODEL.bytes);
    expect(signatureError(flipped(MODEL.bytes, parsed.bodyRange.start + 200), MODEL.nowSecs).step).toBe(
      'quote',
    );
    expect(signatureError(flipped(MODEL.bytes, parsed.reportDataOffset), MODEL.nowSecs).step).toBe('quote');
  });

  it('one flipped byte of the QE report fails its PCK signature', () => {
    const sig = parseQuote(MODEL.bytes).signatureData;
    // Signature data: ECDSA signature (64), attestation key (64), cert type u16, size u32, QE report.
    const qeReport = sig.range.start + 64 + 64 + 6;
    expect(signatureError(flipped(MODEL.bytes, qeReport + 100), MODEL.nowSecs).step).toBe('qe-report');
  });

  it('one changed character of the PCK leaf or the intermediate breaks the chain to Intel', () => {
    for (const n of [0, 1]) {
      const bad = flippedBase64(MODEL.bytes, inCertificate(MODEL.bytes, n, 200));
      expect(signatureError(bad, MODEL.nowSecs).step).toBe('pck-chain');
    }
  });

  it('a real quote re-signed with an attacker key fails: the QE report does not vouch for that key', () => {
    const parsed = parseQuote(MODEL.bytes);
    const forged = new Uint8Array(MODEL.bytes);
    forged[parsed.reportDataOffset] = (forged[parsed.reportDataOffset] ?? 0) ^ 0xff;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const key = Buffer.concat([Buffer.from(jwk.x ?? '', 'base64url'), Buffer.from(jwk.y ?? '', 'base64url')]);
    const signed = forged.subarray(parsed.signedRange.start, parsed.signedRange.end);
    const signature = sign('sha256', signed, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    forged.set(signature, parsed.signatureData.range.start);
    forged.set(key, parsed.signatureData.range.start + 64);
    expect(signatureError(forged, MODEL.nowSecs).step).toBe('qe-binding');
  });

  it('a simulated quote does not chain to Intel, whatever its fields say', async () => {
    const provider = new SimulatedQuoteProvider();
    const { quote } = await provider.getQuote(new Uint8Array(64));
    const error = signatureError(quote, Math.floor(Date.now() / 1000));
    expect(error.step).toBe('pck-chain');
    expect(error.message).toMatch(/no PCK certificate chain/);
  });
});
