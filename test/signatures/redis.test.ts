import { createClient } from '@redis/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Signers } from '../../src/keys/index.js';
import { RedisCommandTimeoutError, RedisSignatureStore } from '../../src/signatures/index.js';
import { responseId, signedRecord, storeRecord, testSigners } from './redis-records.js';
import {
  noBinaryOutsideCi,
  RedisProcess,
  redisSkipReason,
  type TestRedis,
  testRedis,
  uniquePrefix,
  waitFor,
} from './redis-server.js';

const skip = redisSkipReason(false);
const TTL = 60_000;

type Raw = ReturnType<typeof createClient>;

describe.skipIf(skip !== undefined)(`RedisSignatureStore${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let redis: TestRedis;
  let raw: Raw;
  let signers: Signers;
  const stores: RedisSignatureStore[] = [];

  const store = async (
    options: { prefix?: string; ttlMs?: number; url?: string; timeoutMs?: number } = {},
  ) => {
    const s = new RedisSignatureStore({
      url: options.url ?? redis.url,
      keyPrefix: options.prefix ?? uniquePrefix(),
      ttlMs: options.ttlMs ?? TTL,
      commandTimeoutMs: options.timeoutMs ?? 1000,
    });
    stores.push(s);
    await s.connect();
    return s;
  };

  beforeAll(async () => {
    redis = await testRedis();
    raw = createClient({ url: redis.url });
    await raw.connect();
    signers = await testSigners();
  });

  afterAll(async () => {
    for (const s of stores) await s.close();
    await raw.close();
    await redis.close();
  });

  it('round-trips a record as JSON under prefix + lower-cased id, with a PX expiry', async () => {
    const s = await store();
    const id = 'chatcmpl-MixedCASE-42';
    const record = signedRecord(signers);
    await storeRecord(s, id, record);
    expect(await s.get(id)).toEqual(record);
    const key = `${s.keyPrefix}chatcmpl-mixedcase-42`;
    expect(JSON.parse((await raw.get(key)) ?? 'null')).toEqual(record);
    const pttl = await raw.pTTL(key);
    expect(pttl).toBeGreaterThan(TTL - 5_000);
    expect(pttl).toBeLessThanOrEqual(TTL);
  });

  it('looks ids up case-insensitively and answers undefined for unknown ids', async () => {
    const s = await store();
    const record = signedRecord(signers);
    await storeRecord(s, 'ChatCmpl-AbCdEf', record);
    expect(await s.get('chatcmpl-abcdef')).toEqual(record);
    expect(await s.get('CHATCMPL-ABCDEF')).toEqual(record);
    expect(await s.get('chatcmpl-unknown')).toBeUndefined();
  });

  it('lets Redis expire records after the TTL (Redis clock, ms precision)', async () => {
    const s = await store({ ttlMs: 80 });
    const id = responseId();
    await storeRecord(s, id, signedRecord(signers));
    expect(await s.get(id)).toBeDefined();
    expect(await raw.pTTL(s.key(id))).toBeLessThanOrEqual(80);
    await waitFor('the record to expire', async () => (await s.get(id)) === undefined, 2_000);
    expect(await raw.exists(s.key(id))).toBe(0);
  });

  it('writes a replayed record with only the lifetime it has left', async () => {
    const s = await store();
    const id = responseId();
    await s.putFor({ id, token: 'absent' }, signedRecord(signers), 1_500);
    const pttl = await raw.pTTL(s.key(id));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(1_500);
  });

  it('shares records between two stores on one Redis, and keeps prefixes apart', async () => {
    const prefix = uniquePrefix();
    const a = await store({ prefix });
    const b = await store({ prefix });
    const other = await store();
    const id = responseId();
    const record = signedRecord(signers);
    await storeRecord(a, id, record);
    expect(await b.get(id.toUpperCase())).toEqual(record);
    expect(await other.get(id)).toBeUndefined();
  });

  it('never lets a second replica take an id, in any letter case, stored or still in flight', async () => {
    const prefix = uniquePrefix();
    const a = await store({ prefix });
    const b = await store({ prefix });
    const id = responseId();
    const record = signedRecord(signers);
    const claim = await a.claim(id);
    expect(claim).toBeDefined();
    // In flight on replica a: b can neither claim it nor see a record yet.
    expect(await b.claim(id.toUpperCase())).toBeUndefined();
    expect(await b.get(id)).toBeUndefined();
    expect(await a.put(claim as NonNullable<typeof claim>, record)).toBe(true);
    // Stored: still refused, and a forged or stale claim cannot overwrite it.
    expect(await b.claim(id)).toBeUndefined();
    expect(await b.put({ id, token: 'forged' }, signedRecord(signers))).toBe(false);
    expect(await b.put(claim as NonNullable<typeof claim>, signedRecord(signers))).toBe(false);
    expect(await b.get(id)).toEqual(record);
    // Two replicas racing for one fresh id: exactly one wins.
    const raced = responseId();
    const results = await Promise.all([a.claim(raced), b.claim(raced), a.claim(raced.toUpperCase())]);
    expect(results.filter((r) => r !== undefined)).toHaveLength(1);
  });

  it('finds records written before a restart (a new instance on the same Redis)', async () => {
    const prefix = uniquePrefix();
    const before = await store({ prefix });
    const id = responseId();
    const record = signedRecord(signers);
    await storeRecord(before, id, record);
    await before.close();
    const after = await store({ prefix });
    expect(await after.get(id)).toEqual(record);
  });

  it('ignores stored values that are not a well-formed record, and says so', async () => {
    const errors: string[] = [];
    const s = new RedisSignatureStore({
      url: redis.url,
      keyPrefix: uniquePrefix(),
      ttlMs: TTL,
      onError: (e) => errors.push(e.message),
    });
    stores.push(s);
    await s.connect();
    await raw.set(s.key('not-json'), '{oops', { expiration: { type: 'PX', value: TTL } });
    await raw.set(s.key('wrong-shape'), JSON.stringify({ text: 'x', ecdsa: {}, ed25519: {} }), {
      expiration: { type: 'PX', value: TTL },
    });
    expect(await s.get('not-json')).toBeUndefined();
    expect(await s.get('wrong-shape')).toBeUndefined();
    expect(errors).toEqual([
      'redis: a stored signature record is not JSON; ignored',
      'redis: a stored signature record is malformed; ignored',
    ]);
  });

  it('fails fast while Redis is unreachable (offline queue disabled) and closes without hanging', async () => {
    const down = await RedisProcess.create(false);
    const errors: Error[] = [];
    const s = new RedisSignatureStore({
      url: down.url,
      ttlMs: TTL,
      commandTimeoutMs: 5_000,
      onError: (e) => errors.push(e),
    });
    void s.connect();
    const started = Date.now();
    await expect(s.claim(responseId())).rejects.toThrow(/offline|closed/i);
    await expect(s.put({ id: responseId(), token: 't' }, signedRecord(signers))).rejects.toThrow(
      /offline|closed/i,
    );
    await expect(s.get(responseId())).rejects.toThrow(/offline|closed/i);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(s.ready).toBe(false);
    await waitFor('a connection error report', () => errors.length > 0, 5_000);
    // Reported once per distinct message, not once per reconnect attempt.
    expect(new Set(errors.map((e) => e.message)).size).toBe(errors.length);
    await s.close();
  });

  it.skipIf(noBinaryOutsideCi)(
    'bounds a command to its timeout when Redis hangs (socket open, no answer)',
    async () => {
      const hung = await RedisProcess.create();
      try {
        const s = new RedisSignatureStore({ url: hung.url, ttlMs: TTL, commandTimeoutMs: 100 });
        await s.connect();
        expect(s.ready).toBe(true);
        hung.freeze();
        const started = Date.now();
        await expect(s.put({ id: responseId(), token: 't' }, signedRecord(signers))).rejects.toBeInstanceOf(
          RedisCommandTimeoutError,
        );
        await expect(s.ping()).rejects.toBeInstanceOf(RedisCommandTimeoutError);
        expect(Date.now() - started).toBeLessThan(1_000);
        const closing = Date.now();
        await s.close(100);
        expect(Date.now() - closing).toBeLessThan(1_000);
      } finally {
        await hung.kill();
      }
    },
  );
});
