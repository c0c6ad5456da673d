import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemorySignatureStore, PendingSignatures, type SignatureRecord } from '../../src/signatures/index.js';
import { storeRecord } from './redis-records.js';

const record = (n: number): SignatureRecord => ({
  text: `${'a'.repeat(64)}:${n.toString(16).padStart(64, '0')}`,
  ecdsa: { signature: `0x${'1'.repeat(130)}`, address: '0xabc' },
  ed25519: { signature: '2'.repeat(128), address: 'def' },
});

describe('MemorySignatureStore', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => vi.useRealTimers());

  it('finds records case-insensitively and forgets them after the TTL', async () => {
    const store = new MemorySignatureStore({ ttlMs: 20 * 60_000, capacity: 10 });
    await storeRecord(store, 'chatcmpl-AbC', record(1));
    expect(await store.get('CHATCMPL-abc')).toEqual(record(1));
    vi.advanceTimersByTime(20 * 60_000 - 1);
    expect(await store.get('chatcmpl-abc')).toBeDefined();
    vi.advanceTimersByTime(1);
    expect(await store.get('chatcmpl-abc')).toBeUndefined();
    await storeRecord(store, 'other', record(2));
    expect(store.size).toBe(1);
  });

  it('evicts the oldest at capacity and reports each early eviction', async () => {
    const evictions: Array<{ ageMs: number; evictedTotal: number }> = [];
    const store = new MemorySignatureStore({
      ttlMs: 60_000,
      capacity: 3,
      onEarlyEviction: (e) => evictions.push(e),
    });
    for (let i = 0; i < 5; i++) {
      await storeRecord(store, `id-${i}`, record(i));
      vi.advanceTimersByTime(10);
    }
    expect(store.size).toBe(3);
    expect(await store.get('id-0')).toBeUndefined();
    expect(await store.get('id-1')).toBeUndefined();
    expect(await store.get('id-2')).toEqual(record(2));
    expect(evictions).toEqual([
      { ageMs: 30, evictedTotal: 1 },
      { ageMs: 30, evictedTotal: 2 },
    ]);
    expect(store.earlyEvictions).toBe(2);
  });

  it('never lets a second response take an id, in any letter case, stored or still in flight', async () => {
    const store = new MemorySignatureStore({ ttlMs: 60_000, capacity: 10 });
    await storeRecord(store, 'chatcmpl-a', record(1));
    expect(await store.claim('chatcmpl-a')).toBeUndefined();
    expect(await store.claim('CHATCMPL-A')).toBeUndefined();
    expect(await store.get('chatcmpl-a')).toEqual(record(1));
    // Claimed, not yet signed: invisible to lookups, and still not available to anyone else.
    const inFlight = await store.claim('chatcmpl-b');
    expect(inFlight).toBeDefined();
    expect(await store.get('chatcmpl-b')).toBeUndefined();
    expect(await store.claim('Chatcmpl-B')).toBeUndefined();
    expect(await store.put(inFlight as NonNullable<typeof inFlight>, record(2))).toBe(true);
    expect(await store.get('chatcmpl-b')).toEqual(record(2));
    // A claim cannot be filled twice, nor can a forged claim fill someone else's id.
    expect(await store.put(inFlight as NonNullable<typeof inFlight>, record(3))).toBe(false);
    expect(await store.put({ id: 'chatcmpl-a', token: 'forged' }, record(3))).toBe(false);
    expect(await store.get('chatcmpl-a')).toEqual(record(1));
    // The id stays taken for as long as its record lives, then is free again.
    vi.advanceTimersByTime(60_000);
    expect(await store.claim('chatcmpl-a')).toBeDefined();
  });

  it("a claim evicted for capacity cannot be filled into another response's claim of the same id", async () => {
    const store = new MemorySignatureStore({ ttlMs: 60_000, capacity: 1 });
    const first = await store.claim('chatcmpl-x');
    await store.claim('chatcmpl-y'); // evicts the first claim
    const second = await store.claim('chatcmpl-x'); // evicts y; x is free again
    expect(second).toBeDefined();
    expect(await store.put(first as NonNullable<typeof first>, record(1))).toBe(false);
    expect(await store.put(second as NonNullable<typeof second>, record(2))).toBe(true);
    expect(await store.get('chatcmpl-x')).toEqual(record(2));
  });
});

describe('PendingSignatures', () => {
  it('wakes a waiter when the id settles, and times out otherwise', async () => {
    vi.useFakeTimers();
    try {
      const pending = new PendingSignatures();
      pending.begin('Chat-1');
      let woke = false;
      const w = pending.wait('chat-1', 5000).then(() => {
        woke = true;
      });
      await vi.advanceTimersByTimeAsync(100);
      expect(woke).toBe(false);
      pending.settle('CHAT-1');
      await w;
      expect(woke).toBe(true);
      pending.begin('x');
      let timedOut = false;
      const t = pending.wait('x', 50).then(() => {
        timedOut = true;
      });
      await vi.advanceTimersByTimeAsync(49);
      expect(timedOut).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await t;
      expect(timedOut).toBe(true);
      // Timing out gives up waiting; the id stays in flight until the proxy settles it.
      expect(pending.size).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('packed records', () => {
  it('round-trip canonical records exactly and keep non-canonical ones as given', async () => {
    const { packRecord, unpackRecord } = await import('../../src/signatures/packed-record.js');
    const hex = (n: number, seed: number) =>
      Array.from({ length: n }, (_, i) => ((i * 7 + seed) % 16).toString(16)).join('');
    const canonical: SignatureRecord = {
      text: `${hex(64, 1)}:${hex(64, 2)}`,
      ecdsa: { signature: `0x${hex(128, 3)}1b`, address: '0x2c7536E3605D9C16a7a3D7b1898e529396a65c23' },
      ed25519: { signature: hex(128, 4), address: hex(64, 5) },
    };
    const packed = packRecord(canonical);
    expect(packed?.packed.length).toBe(193);
    expect(unpackRecord(packed as NonNullable<typeof packed>)).toEqual(canonical);
    expect(packRecord({ ...canonical, text: canonical.text.toUpperCase() })).toBeUndefined();
    const store = new MemorySignatureStore({ ttlMs: 60_000, capacity: 10 });
    await storeRecord(store, 'a', canonical);
    await storeRecord(store, 'b', record(1));
    expect(await store.get('a')).toEqual(canonical);
    expect(await store.get('b')).toEqual(record(1));
  });
});
