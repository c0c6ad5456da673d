import { createClient } from '@redis/client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Signers } from '../../src/keys/index.js';
import {
  MemorySignatureStore,
  RedisSignatureStore,
  TieredSignatureStore,
} from '../../src/signatures/index.js';
import { responseId, signedRecord, storeRecord, testSigners } from './redis-records.js';
import { RedisProcess, redisSkipReason, uniquePrefix, waitFor } from './redis-server.js';

/**
 * Two replicas (two tiered stores, one Redis) while Redis is killed, frozen and restarted. Each test
 * owns its redis-server child, so killing it disturbs no other test.
 */
const skip = redisSkipReason(true);
const TTL = 60_000;

describe.skipIf(skip !== undefined)(
  `TieredSignatureStore over a real Redis${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let signers: Signers;
    const cleanup: Array<() => Promise<void>> = [];
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);

    beforeAll(async () => {
      signers = await testSigners();
    });

    afterEach(async () => {
      process.off('unhandledRejection', onUnhandled);
      for (const fn of cleanup.splice(0).reverse()) await fn();
    });

    const replica = (url: string, prefix: string, retryBufferSize = 1000) => {
      const store = new TieredSignatureStore({
        local: new MemorySignatureStore({ ttlMs: TTL, capacity: 1000 }),
        remote: new RedisSignatureStore({ url, keyPrefix: prefix, ttlMs: TTL, commandTimeoutMs: 150 }),
        ttlMs: TTL,
        retryBufferSize,
        retryIntervalMs: 50,
      });
      cleanup.push(() => store.close());
      return store;
    };

    const server = async (started = true) => {
      const redis = await RedisProcess.create(started);
      cleanup.push(() => redis.kill());
      return redis;
    };

    it('keeps signing through a Redis crash and replays the buffered writes after its restart', async () => {
      process.on('unhandledRejection', onUnhandled);
      const redis = await server();
      const prefix = uniquePrefix();
      const a = replica(redis.url, prefix);
      const b = replica(redis.url, prefix);
      await waitFor('both replicas connected', () => a.remoteAvailable && b.remoteAvailable);

      const before = responseId();
      const beforeRecord = signedRecord(signers);
      await storeRecord(a, before, beforeRecord);
      expect(await b.get(before)).toEqual(beforeRecord);

      await redis.kill();
      const during = [responseId(), responseId(), responseId()];
      const started = Date.now();
      for (const id of during) await storeRecord(a, id, signedRecord(signers));
      // Refused connections fail at once: no request waits for Redis.
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(a.remoteAvailable).toBe(false);
      expect(a.buffered).toBe(3);
      for (const id of during) expect(await a.get(id)).toBeDefined();
      expect(await a.get(before)).toEqual(beforeRecord);
      expect(await b.get(during[0] as string)).toBeUndefined();

      await redis.start();
      await waitFor('A to replay its buffer', () => a.buffered === 0 && a.remoteAvailable);
      await waitFor('B to reconnect', () => b.remoteAvailable);
      for (const id of during) expect(await b.get(id)).toBeDefined();
      expect(a.replayedWrites).toBe(3);
      // Redis ran without persistence: what it held before the crash is gone from Redis, yet the
      // replica that signed it still serves it from memory.
      expect(await b.get(before)).toBeUndefined();
      expect(await a.get(before)).toEqual(beforeRecord);

      const raw = createClient({ url: redis.url });
      await raw.connect();
      const pttl = await raw.pTTL(`${prefix}${during[0]}`);
      await raw.close();
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(TTL);
      expect(unhandled).toEqual([]);
    });

    it('waits at most one command timeout on a hung Redis, then buffers until it answers again', async () => {
      process.on('unhandledRejection', onUnhandled);
      const redis = await server();
      const prefix = uniquePrefix();
      const a = replica(redis.url, prefix);
      const b = replica(redis.url, prefix);
      await waitFor('both replicas connected', () => a.remoteAvailable && b.remoteAvailable);

      redis.freeze();
      const first = responseId();
      const t0 = Date.now();
      await storeRecord(a, first, signedRecord(signers));
      const firstMs = Date.now() - t0;
      expect(firstMs).toBeGreaterThanOrEqual(100);
      expect(firstMs).toBeLessThan(1_000);
      const t1 = Date.now();
      const second = responseId();
      await storeRecord(a, second, signedRecord(signers));
      expect(await a.get('chatcmpl-unknown')).toBeUndefined();
      expect(Date.now() - t1).toBeLessThan(50);
      expect(a.buffered).toBe(2);

      redis.thaw();
      await waitFor('A to replay its buffer', () => a.buffered === 0 && a.remoteAvailable);
      expect(await b.get(first)).toBeDefined();
      expect(await b.get(second)).toBeDefined();
      expect(unhandled).toEqual([]);
    });

    it('starts while Redis is down, serves locally, and hands over its writes when Redis appears', async () => {
      process.on('unhandledRejection', onUnhandled);
      const redis = await server(false);
      const prefix = uniquePrefix();
      const a = replica(redis.url, prefix, 2);
      const ids = [responseId(), responseId(), responseId()];
      for (const id of ids) await storeRecord(a, id, signedRecord(signers));
      expect(a.remoteAvailable).toBe(false);
      expect(a.buffered).toBe(2);
      expect(a.droppedWrites).toBe(1);

      await redis.start();
      await waitFor('the replay', () => a.buffered === 0 && a.remoteAvailable);
      const b = replica(redis.url, prefix);
      await waitFor('B connected', () => b.remoteAvailable);
      expect(await b.get(ids[0] as string)).toBeUndefined(); // dropped from the full buffer
      expect(await b.get(ids[1] as string)).toBeDefined();
      expect(await b.get(ids[2] as string)).toBeDefined();
      expect(unhandled).toEqual([]);
    });

    it('finds a record after a sidecar restart (a fresh tiered store on the same Redis)', async () => {
      const redis = await server();
      const prefix = uniquePrefix();
      const first = replica(redis.url, prefix);
      await waitFor('connected', () => first.remoteAvailable);
      const id = responseId();
      const record = signedRecord(signers);
      await storeRecord(first, id, record);
      await first.close();
      const second = replica(redis.url, prefix);
      await waitFor('connected', () => second.remoteAvailable);
      expect(await second.get(id)).toEqual(record);
    });
  },
);
