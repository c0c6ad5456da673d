import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Signer, Signers, SigningAlgo } from '../../src/keys/index.js';
import { lazyRecord, MemorySignatureStore, signPair } from '../../src/signatures/index.js';
import { storeRecord, testSigners } from './redis-records.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Real signers that count every signature they make. */
const counting = (signers: Signers) => {
  const made: Record<SigningAlgo, number> = { ecdsa: 0, ed25519: 0 };
  const wrap = (s: Signer): Signer => ({
    ...s,
    sign: (text: string) => {
      made[s.algo]++;
      return s.sign(text);
    },
  });
  const ecdsa = wrap(signers.ecdsa);
  const ed25519 = wrap(signers.ed25519);
  return { made, signers: { ecdsa, ed25519, get: (a: SigningAlgo) => (a === 'ecdsa' ? ecdsa : ed25519) } };
};

describe('lazily signed records', () => {
  it('sign only the algorithm read, once, with the bytes signing at delivery gives', async () => {
    const real = await testSigners();
    const { made, signers } = counting(real);
    const [req, res] = [sha(randomBytes(8)), sha(randomBytes(8))];
    const eager = signPair(real, req, res);
    const lazy = lazyRecord(signers, `${req}:${res}`);
    expect(made).toEqual({ ecdsa: 0, ed25519: 0 });
    expect(lazy.ed25519).toEqual(eager.ed25519);
    expect(lazy.ed25519).toEqual(eager.ed25519);
    expect(made).toEqual({ ecdsa: 0, ed25519: 1 });
    expect(lazy).toEqual(eager);
    expect(made).toEqual({ ecdsa: 1, ed25519: 1 });
  });

  it('serialize with both signatures, so a record in a shared store is complete', async () => {
    const real = await testSigners();
    const [req, res] = [sha(randomBytes(8)), sha(randomBytes(8))];
    const lazy = lazyRecord(real, `${req}:${res}`);
    expect(JSON.parse(JSON.stringify(lazy))).toEqual(signPair(real, req, res));
  });

  it('are stored digests-only in memory and keep each signature once it is made', async () => {
    const real = await testSigners();
    const { made, signers } = counting(real);
    const store = new MemorySignatureStore({ ttlMs: 60_000, capacity: 10 });
    const [req, res] = [sha(randomBytes(8)), sha(randomBytes(8))];
    await storeRecord(store, 'chatcmpl-Lazy', lazyRecord(signers, `${req}:${res}`));
    expect(made).toEqual({ ecdsa: 0, ed25519: 0 });
    const eager = signPair(real, req, res);
    expect((await store.get('chatcmpl-lazy'))?.ecdsa).toEqual(eager.ecdsa);
    expect((await store.get('CHATCMPL-LAZY'))?.ecdsa).toEqual(eager.ecdsa);
    expect(made).toEqual({ ecdsa: 1, ed25519: 0 });
    expect((await store.get('chatcmpl-lazy'))?.ed25519).toEqual(eager.ed25519);
    expect(await store.get('chatcmpl-lazy')).toEqual(eager);
    expect(made).toEqual({ ecdsa: 1, ed25519: 1 });
  });

  it('give the same record as eager signing, for any order of reads (property)', async () => {
    const real = await testSigners();
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.array(fc.constantFrom<SigningAlgo>('ecdsa', 'ed25519'), { maxLength: 4 }),
        async (a, b, reads) => {
          const [req, res] = [Buffer.from(a).toString('hex'), Buffer.from(b).toString('hex')];
          const store = new MemorySignatureStore({ ttlMs: 60_000, capacity: 4 });
          await storeRecord(store, 'id', lazyRecord(real, `${req}:${res}`));
          const eager = signPair(real, req, res);
          for (const algo of reads) expect((await store.get('id'))?.[algo]).toEqual(eager[algo]);
          expect(await store.get('id')).toEqual(eager);
        },
      ),
      { numRuns: 30 },
    );
  });

  it('are not filled back into an id that was withdrawn meanwhile', async () => {
    const real = await testSigners();
    const store = new MemorySignatureStore({ ttlMs: 60_000, capacity: 10 });
    await storeRecord(store, 'x', lazyRecord(real, `${sha(randomBytes(4))}:${sha(randomBytes(4))}`));
    const read = await store.get('x');
    store.withdraw('x');
    expect(read?.ecdsa.signature).toMatch(/^0x[0-9a-f]{130}$/);
    expect(await store.get('x')).toBeUndefined();
  });
});
