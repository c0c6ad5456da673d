import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSigners, EphemeralKeySource, type Signers } from '../../src/keys/index.js';
import {
  MemorySignatureStore,
  parseSignedText,
  SIGNED_TEXT_PATTERN,
  sha256Hex,
  signatureRecordSchema,
  signedText,
  signPair,
} from '../../src/signatures/index.js';
import { lazyRecord } from '../../src/signatures/lazy-record.js';
import { packRecord, unpackRecord } from '../../src/signatures/packed-record.js';

/**
 * One owner of the signed text and the record (signed-text.ts): whatever the signer makes, the
 * memory store packs and the Redis reader accepts, and the parse inverts the join.
 */
let signers: Signers;
beforeAll(async () => {
  signers = createSigners(await new EphemeralKeySource().load());
});

const digest = fc.uint8Array({ minLength: 0, maxLength: 64 }).map((b) => sha256Hex(b));

describe('signed text', () => {
  it('join and parse are inverse, and only two lowercase sha256 digests are accepted', () => {
    fc.assert(
      fc.property(digest, digest, (req, res) => {
        const text = signedText(req, res);
        expect(parseSignedText(text)).toEqual({ requestHash: req, responseHash: res });
      }),
      { numRuns: 200 },
    );
    const a = sha256Hex(new Uint8Array([1]));
    expect(() => signedText(a.toUpperCase(), a)).toThrow(TypeError);
    expect(() => signedText(a.slice(2), a)).toThrow(TypeError);
    expect(parseSignedText(`${a}:${a}:${a}`)).toEqual({ model: a, requestHash: a, responseHash: a });
    expect(parseSignedText(`:${a}:${a}`)).toBeUndefined();
    expect(parseSignedText(`${a}:${a.toUpperCase()}`)).toBeUndefined();
  });

  it('every record the signer makes packs in memory, round-trips exactly, and passes the Redis check', async () => {
    const digests = await fc.sample(fc.tuple(digest, digest), 25);
    for (const [req, res] of digests) {
      const record = signPair(signers, req, res);
      expect(record.text).toMatch(SIGNED_TEXT_PATTERN);
      const packed = packRecord(record);
      expect(packed).toBeDefined();
      expect(unpackRecord(packed as NonNullable<typeof packed>)).toEqual(record);
      expect(signatureRecordSchema.safeParse(JSON.parse(JSON.stringify(record))).success).toBe(true);
    }
    const store = new MemorySignatureStore({ ttlMs: 60_000, capacity: 10 });
    const claim = await store.claim('chatcmpl-format');
    const record = signPair(signers, sha256Hex(new Uint8Array([2])), sha256Hex(new Uint8Array([3])));
    await store.put(claim as NonNullable<typeof claim>, record);
    expect(await store.get('chatcmpl-format')).toEqual(record);
  });

  it('the model format (NEAR AI): model:req:res joins, parses, packs and passes the Redis check', async () => {
    const model = fc.stringMatching(/^[^\s\p{Cc}]{1,40}$/u);
    fc.assert(
      fc.property(model, digest, digest, (m, req, res) => {
        const text = signedText(req, res, m);
        expect(text).toBe(`${m}:${req}:${res}`);
        expect(parseSignedText(text)).toEqual({ model: m, requestHash: req, responseHash: res });
      }),
      { numRuns: 200 },
    );
    const a = sha256Hex(new Uint8Array([4]));
    // Digests are the last two parts: a name with ':' (Ollama-style tags) still parses.
    expect(parseSignedText(`qwen3:8b:${a}:${a}`)?.model).toBe('qwen3:8b');
    expect(() => signedText(a, a, '')).toThrow(TypeError);
    expect(() => signedText(a, a, 'two words')).toThrow(TypeError);
    expect(() => signedText(a, a, 'x'.repeat(257))).toThrow(TypeError);
    for (const record of [
      signPair(signers, a, a, 'meta-llama/Llama-3.3-70B-Instruct'),
      lazyRecord(signers, signedText(a, a, 'meta-llama/Llama-3.3-70B-Instruct')),
    ]) {
      const packed = packRecord(record);
      expect(packed?.model).toBe('meta-llama/Llama-3.3-70B-Instruct');
      expect(unpackRecord(packed as NonNullable<typeof packed>)).toEqual(record);
      expect(signatureRecordSchema.safeParse(JSON.parse(JSON.stringify(record))).success).toBe(true);
    }
    // The memory store keeps the model of a lazily signed record too (it packs lazy records tightest).
    const store = new MemorySignatureStore({ ttlMs: 60_000, capacity: 10 });
    for (const [id, model] of [
      ['chatcmpl-plain', undefined],
      ['chatcmpl-model', 'served-a'],
    ] as const) {
      const claim = await store.claim(id);
      const record = lazyRecord(signers, signedText(a, a, model));
      await store.put(claim as NonNullable<typeof claim>, record);
      expect((await store.get(id))?.text).toBe(record.text);
      expect((await store.get(id))?.ecdsa).toEqual(record.ecdsa);
    }
  });
});
