import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { OldestFirst } from '../../src/concurrency/index.js';
import {
  MemorySignatureStore,
  type SignatureClaim,
  type SignatureRecord,
} from '../../src/signatures/index.js';

/**
 * Attacks on the memory store's own oldest-first order (OldestFirst instead of the Map's iteration
 * order): the store is driven side by side with the Map-order reference below, a small model of the
 * store as it was when it found its oldest entry by iterating its Map, and every observable result is
 * compared.
 */

const record = (n: number): SignatureRecord => ({
  text: `${'a'.repeat(64)}:${n.toString(16).padStart(64, '0')}`,
  ecdsa: { signature: `0x${'1'.repeat(130)}`, address: '0xabc' },
  ed25519: { signature: '2'.repeat(128), address: 'def' },
});

type RefValue = { claim: string } | { n: number };

/**
 * The Map-order reference: the same rules (claims and records share capacity and TTL, a claim is
 * filled in place, an expired or evicted claim is stored anew), the oldest entry found as the first
 * one the Map iterates.
 */
class MapOrderReference {
  readonly entries = new Map<string, { value: RefValue; expiresAt: number }>();
  readonly evictions: Array<{ ageMs: number; evictedTotal: number }> = [];
  private evicted = 0;
  private tokens = 0;
  private readonly epoch: number;

  constructor(
    private readonly ttlMs: number,
    private readonly capacity: number,
    private readonly clock: () => number,
  ) {
    this.epoch = clock();
  }

  private now(): number {
    return this.clock() - this.epoch;
  }

  claim(id: string): SignatureClaim | undefined {
    const now = this.now();
    this.sweep(now);
    const key = id.toLowerCase();
    const existing = this.entries.get(key);
    if (existing !== undefined && existing.expiresAt > now) return undefined;
    const token = `ref-${this.tokens++}`;
    this.entries.delete(key);
    this.makeRoom(now);
    this.entries.set(key, { value: { claim: token }, expiresAt: now + this.ttlMs });
    return { id, token };
  }

  put(claim: SignatureClaim, n: number): boolean {
    const now = this.now();
    this.sweep(now);
    const key = claim.id.toLowerCase();
    const entry = this.entries.get(key);
    if (entry !== undefined && entry.expiresAt > now) {
      if (!('claim' in entry.value) || entry.value.claim !== claim.token) return false;
      entry.value = { n };
      return true;
    }
    this.entries.delete(key);
    this.makeRoom(now);
    this.entries.set(key, { value: { n }, expiresAt: now + this.ttlMs });
    return true;
  }

  withdraw(id: string): void {
    const entry = this.entries.get(id.toLowerCase());
    if (entry !== undefined) entry.value = { claim: 'withdrawn' };
  }

  get(id: string): number | undefined {
    const entry = this.entries.get(id.toLowerCase());
    if (entry === undefined || entry.expiresAt <= this.now() || 'claim' in entry.value) return undefined;
    return entry.value.n;
  }

  close(): void {
    this.entries.clear();
  }

  get earlyEvictions(): number {
    return this.evicted;
  }

  private makeRoom(now: number): void {
    while (this.entries.size >= this.capacity) {
      const first = this.entries.entries().next();
      if (first.done === true) break;
      const [key, entry] = first.value;
      this.entries.delete(key);
      this.evicted++;
      this.evictions.push({ ageMs: now - (entry.expiresAt - this.ttlMs), evictedTotal: this.evicted });
    }
  }

  private sweep(now: number): void {
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt > now) break;
      this.entries.delete(key);
    }
  }
}

/** The store's queue, for the bound on its length (a private field, read for this test only). */
const orderOf = (store: MemorySignatureStore): OldestFirst<string, { key: string }> =>
  Reflect.get(store, 'entries') as OldestFirst<string, { key: string }>;

const IDS = ['id-a', 'ID-A', 'id-b', 'Id-B', 'id-c', 'id-d', 'id-e'];

const op = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('claim' as const), id: fc.nat(IDS.length - 1) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('put' as const),
      // Which claim handed out so far (modulo their number): recent or long evicted alike.
      handle: fc.nat(40),
      // Hand it back under its id in another letter case, as a 0G broker would.
      upper: fc.boolean(),
      n: fc.nat(1000),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('get' as const), id: fc.nat(IDS.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('withdraw' as const), id: fc.nat(IDS.length - 1) }) },
  // Time: standing still (equal timestamps), forward, and backwards (a clock stepped back).
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: -8, max: 8 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('close' as const) }) },
);

describe('MemorySignatureStore against the Map-order reference', () => {
  it('gives the same answers, sizes, early evictions and eviction ages under any claim/put/get/withdraw/time sequence', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(op, { maxLength: 150 }),
        async (capacity, ttlMs, ops) => {
          let t = 5_000;
          const clock = () => t;
          const evictions: Array<{ ageMs: number; evictedTotal: number }> = [];
          const store = new MemorySignatureStore({
            ttlMs,
            capacity,
            now: clock,
            onEarlyEviction: (e) => evictions.push(e),
          });
          const ref = new MapOrderReference(ttlMs, capacity, clock);
          const handles: Array<{ store: SignatureClaim; ref: SignatureClaim }> = [];
          for (const o of ops) {
            switch (o.kind) {
              case 'claim': {
                const a = store.claimNow(IDS[o.id] as string);
                const b = ref.claim(IDS[o.id] as string);
                expect(a === undefined).toBe(b === undefined);
                if (a !== undefined && b !== undefined) handles.push({ store: a, ref: b });
                break;
              }
              case 'put': {
                if (handles.length === 0) break;
                const h = handles[o.handle % handles.length] as {
                  store: SignatureClaim;
                  ref: SignatureClaim;
                };
                const recase = (c: SignatureClaim) =>
                  o.upper ? { id: c.id.toUpperCase(), token: c.token } : c;
                expect(await store.put(recase(h.store), record(o.n))).toBe(ref.put(recase(h.ref), o.n));
                break;
              }
              case 'get': {
                const n = ref.get(IDS[o.id] as string);
                expect(await store.get(IDS[o.id] as string)).toEqual(n === undefined ? undefined : record(n));
                break;
              }
              case 'withdraw':
                store.withdraw(IDS[o.id] as string);
                ref.withdraw(IDS[o.id] as string);
                break;
              case 'tick':
                t += o.ms;
                break;
              case 'close':
                await store.close();
                ref.close();
                break;
            }
            expect(store.size).toBe(ref.entries.size);
            expect(store.earlyEvictions).toBe(ref.earlyEvictions);
            expect(evictions).toEqual(ref.evictions);
            expect(store.size).toBeLessThanOrEqual(capacity);
          }
          // Every id the reference holds is held by the store too (claim refused on both sides).
          for (const id of IDS) {
            const a = store.claimNow(id);
            const b = ref.claim(id);
            expect(a === undefined).toBe(b === undefined);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('evicts in the Map-order reference order after the clock steps back and an id behind a live front is re-claimed', async () => {
    // A clock stepped back: b and c expire before a. Re-claiming b deletes it from the middle of the
    // order (a, b, c → a, c, b) while a stays live at the front; the dead b must not stand for the new b.
    let t = 10_000;
    const evictions: Array<{ ageMs: number; evictedTotal: number }> = [];
    const store = new MemorySignatureStore({
      ttlMs: 10,
      capacity: 3,
      now: () => t,
      onEarlyEviction: (e) => evictions.push(e),
    });
    const ref = new MapOrderReference(10, 3, () => t);
    const both = (id: string) => {
      const a = store.claimNow(id);
      const b = ref.claim(id);
      expect(a === undefined).toBe(b === undefined);
    };
    both('a');
    t -= 6;
    both('b');
    both('c');
    t += 11; // b and c expired (at 10 004), a lives until 10 010
    both('B');
    expect([...ref.entries.keys()]).toEqual(['a', 'c', 'b']);
    both('d'); // evicts a
    both('e'); // evicts c, not b
    for (const id of ['a', 'b', 'c', 'd', 'e']) both(id);
    expect(store.size).toBe(ref.entries.size);
    expect(evictions).toEqual(ref.evictions);
  });

  it('keeps its queue within about twice its size over a long run with a clock that steps back and forth', async () => {
    // A clock stepped back makes entries behind the front expire first: re-claiming them deletes
    // from the middle of the order while the front entry stays live, the case the rebuild is for.
    let t = 1_000_000;
    const capacity = 500;
    const store = new MemorySignatureStore({ ttlMs: 1000, capacity, now: () => t });
    const order = orderOf(store);
    let longest = 0;
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let i = 0; i < 200_000; i++) {
      t += rand(7) - 3;
      const id = `id-${rand(2 * capacity)}`;
      const claim = store.claimNow(id);
      if (claim !== undefined && rand(2) === 0) await store.put(claim, record(i));
      longest = Math.max(longest, order.queued);
    }
    expect(store.size).toBeLessThanOrEqual(capacity);
    expect(longest).toBeLessThanOrEqual(2 * capacity + 1024 + 1);
  });

  it('gives an eviction callback that claims ids itself a whole store, and keeps the order of adding', () => {
    // Nothing in the proxy's own callback (a metric and a log line) calls back into the store, but the
    // option is public. It used to run between the outer claim's delete and its set: a claim of the
    // same id (K) made inside it was silently overwritten, and with the queue the outer K went behind
    // the callback's W. The callback now runs once the outer claim is in place: its K is refused (the
    // id is held), its W comes after K, and K is evicted before W.
    let reentered = false;
    const store: MemorySignatureStore = new MemorySignatureStore({
      ttlMs: 60_000,
      capacity: 4,
      now: () => 1_000,
      onEarlyEviction: () => {
        if (reentered) return;
        reentered = true;
        store.claimNow('k');
        store.claimNow('w');
      },
    });
    for (const id of ['a', 'b', 'c', 'd']) expect(store.claimNow(id)).toBeDefined();
    expect(store.claimNow('k')).toBeDefined();
    // Order now: c, d, k, w (a and, for W, b evicted). Three more claims evict c, d, then k.
    expect(store.size).toBe(4);
    expect(store.claimNow('q')).toBeDefined();
    expect(store.claimNow('r')).toBeDefined();
    expect(store.claimNow('s')).toBeDefined();
    expect(store.claimNow('w')).toBeUndefined(); // still held
    expect(store.claimNow('k')).toBeDefined(); // evicted first
  });
});
