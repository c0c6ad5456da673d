import { describe, expect, it } from 'vitest';
import { createSigners } from '../../src/keys/index.js';
import {
  decodeSignatureTrailer,
  encodeSignatureTrailer,
  signatureAnswer,
  signatureTrailerRequest,
  signPair,
} from '../../src/signatures/index.js';

const signers = createSigners({ secp256k1: new Uint8Array(32).fill(5), ed25519: new Uint8Array(32).fill(6) });
const record = signPair(signers, 'a'.repeat(64), 'b'.repeat(64));
const b64 = (s: string) => Buffer.from(s).toString('base64url');

describe('the signature trailer format', () => {
  it('round-trips: the decoded bytes are the JSON the lookup serves, for either algorithm', () => {
    for (const algo of ['ecdsa', 'ed25519'] as const) {
      const value = encodeSignatureTrailer(record, algo);
      expect(value).toMatch(/^[A-Za-z0-9_-]+$/);
      const { answer, json } = decodeSignatureTrailer(value, algo);
      expect(answer).toEqual(signatureAnswer(record, algo));
      expect(Buffer.from(json).toString()).toBe(JSON.stringify(signatureAnswer(record, algo)));
    }
  });

  it('refuses what is not a record for the algorithm asked, naming the field and never the value', () => {
    const cases: Array<[string, RegExp]> = [
      ['!!garbage value!!', /is not base64url/],
      ['x'.repeat(9000), /is not base64url/],
      [b64('{"text":'), /is not a JSON record/],
      [b64('\xff\xfe'), /is not a JSON record/],
      [b64('null'), /lacks text, signature or signing_address/],
      [b64('{"text":"t","signature":1,"signing_address":"a","signing_algo":"ecdsa"}'), /lacks/],
      [encodeSignatureTrailer(record, 'ed25519'), /is not the ecdsa record asked for/],
    ];
    for (const [value, message] of cases) {
      expect(() => decodeSignatureTrailer(value, 'ecdsa')).toThrow(message);
      try {
        decodeSignatureTrailer(value, 'ecdsa');
      } catch (err) {
        expect((err as Error).message).not.toContain(value.slice(0, 12));
      }
    }
  });

  it('reads the request header: absent, either algorithm in any case, or an error', () => {
    expect(signatureTrailerRequest(undefined)).toBeUndefined();
    expect(signatureTrailerRequest(' EcDsa ')).toBe('ecdsa');
    expect(signatureTrailerRequest('ed25519')).toBe('ed25519');
    expect(() => signatureTrailerRequest('')).toThrow(/must be ecdsa or ed25519/);
    expect(() => signatureTrailerRequest('rsa')).toThrow(/must be ecdsa or ed25519/);
  });
});
