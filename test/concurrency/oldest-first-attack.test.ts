import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OldestFirst, type RateVerdict, RateWindow } from '../../src/concurrency/index.js';

/**
 * Attacks on OldestFirst: large random runs that cross its cut (consumed front ≥ 1024 and ≥ half the
 * array) and its rebuild (length > 2 × size + 1024), compared at every step with the Map-order
 * reference (what the Map's own iteration names as oldest), and with its length bound checked after
 * every push.
 */

interface Item {
  readonly key: number;
}

const SLACK = 1024;

/** An OldestFirst beside a plain Map given the same operations (`map` applies them to both). */
const owner = () => {
  const plain = new Map<number, Item>();
  const order = new OldestFirst<number, Item>();
  let longest = 0;
  const map = {
    get size() {
      return order.size;
    },
    delete(key: number): void {
      plain.delete(key);
      order.delete(key);
    },
    clear(): void {
      plain.clear();
      order.clear();
    },
  };
  return {
    map,
    order,
    add(key: number): void {
      plain.delete(key);
      const item = { key };
      plain.set(key, item);
      order.add(item);
      // The documented bound, checked right after each add (the add that triggers a rebuild
      // leaves the queue at the live size).
      if (order.queued > 2 * map.size + SLACK) {
        throw new Error(`queue of ${order.queued} for ${map.size} live items`);
      }
      longest = Math.max(longest, order.queued);
    },
    /** The Map-order reference: the first entry the plain Map iterates. */
    reference: (): Item | undefined => plain.values().next().value,
    get longest() {
      return longest;
    },
  };
};

describe('OldestFirst under attack', () => {
  it('names the Map-order oldest across cuts and rebuilds (bulk adds, middle deletes, front trims)', () => {
    const op = fc.oneof(
      // Adds of fresh keys and re-adds of held ones (a dead item left where the key was).
      fc.record({
        kind: fc.constant('add' as const),
        n: fc.integer({ min: 1, max: 2500 }),
        span: fc.nat(3000),
      }),
      // Deletes spread over the whole map: the middle, not the front.
      fc.record({
        kind: fc.constant('remove' as const),
        n: fc.integer({ min: 1, max: 2500 }),
        span: fc.nat(3000),
      }),
      // Trims from the front through oldest(), as the stores evict.
      fc.record({
        kind: fc.constant('trim' as const),
        n: fc.integer({ min: 1, max: 2500 }),
        span: fc.constant(0),
      }),
      fc.record({ kind: fc.constant('clear' as const), n: fc.constant(0), span: fc.constant(0) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 25 }), fc.nat(1000), (ops, salt) => {
        const o = owner();
        let next = 0;
        for (const { kind, n, span } of ops) {
          for (let i = 0; i < n; i++) {
            if (kind === 'add') {
              // Every third add re-adds a recent key, the others are new.
              o.add(
                i % 3 === 0 && next > 0 ? next - 1 - ((i * 7 + salt) % Math.min(next, span + 1)) : next++,
              );
            } else if (kind === 'remove') {
              o.map.delete(next - 1 - ((i * 13 + salt) % Math.max(1, Math.min(next, span + 1))));
            } else if (kind === 'trim') {
              const oldest = o.order.oldest();
              expect(oldest).toBe(o.reference());
              if (oldest === undefined) break;
              o.map.delete(oldest.key);
            }
          }
          if (kind === 'clear') {
            // An owner that empties its map clears the queue with it.
            o.map.clear();
            o.order.clear();
          }
          expect(o.order.oldest()).toBe(o.reference());
          expect(o.order.queued).toBeGreaterThanOrEqual(o.map.size);
        }
        // Drain: the queue names every live item once, in the Map's order.
        const drained: Item[] = [];
        for (let item = o.order.oldest(); item !== undefined; item = o.order.oldest()) {
          drained.push(item);
          o.map.delete(item.key);
        }
        expect(o.map.size).toBe(0);
        expect(o.order.queued).toBe(0);
        return drained.length >= 0;
      }),
      { numRuns: 60 },
    );
  });

  it('stays bounded when the owner deletes from the middle forever while the front stays live', () => {
    const o = owner();
    o.add(-1); // the front: never deleted
    for (let key = 0; key < 1_000_000; key++) {
      o.add(key);
      if (key > 0) o.map.delete(key - 1); // the previous one: in the middle, behind the live front
      if (key % 1000 === 0) expect(o.order.oldest()).toBe(o.reference());
    }
    expect(o.map.size).toBe(2);
    // Three live items at each push (the new one before its predecessor is deleted).
    expect(o.longest).toBeLessThanOrEqual(2 * 3 + SLACK);
    expect(o.order.oldest()?.key).toBe(-1);
  });

  it('stays bounded when the same key is re-added forever behind a live front', () => {
    const o = owner();
    o.add(-1);
    for (let i = 0; i < 1_000_000; i++) o.add(7);
    expect(o.longest).toBeLessThanOrEqual(2 * 2 + SLACK + 1);
    expect(o.order.oldest()?.key).toBe(-1);
  });

  it('holds at most about twice its size over a store-like run of 10^6 operations', () => {
    const o = owner();
    const capacity = 3000;
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let key = 0; key < 1_000_000; key++) {
      o.add(rand(4) === 0 ? key - rand(capacity) : key);
      if (rand(5) === 0) o.map.delete(key - rand(capacity));
      while (o.map.size > capacity) {
        const oldest = o.order.oldest() as Item;
        o.map.delete(oldest.key);
      }
    }
    expect(o.longest).toBeLessThanOrEqual(2 * capacity + SLACK + 1);
    expect(o.order.oldest()).toBe(o.reference());
  });

  it('gives the same oldest when the owner pushes from inside a trim loop (after each oldest())', () => {
    const o = owner();
    for (let key = 0; key < 3000; key++) o.add(key);
    let next = 3000;
    // Evict 2 and add 1, alternately, from inside the loop that walks the front.
    for (let oldest = o.order.oldest(); oldest !== undefined && o.map.size > 10; oldest = o.order.oldest()) {
      expect(oldest).toBe(o.reference());
      o.map.delete(oldest.key);
      const second = o.order.oldest();
      if (second !== undefined) o.map.delete(second.key);
      o.add(next++);
    }
    expect(o.order.oldest()).toBe(o.reference());
  });
});

/**
 * The Map-order reference for RateWindow: its rules as they were when the oldest window was found by
 * iterating the Map (a window that reopens moves to the back).
 */
class MapOrderRateWindow {
  readonly windows = new Map<string, { opened: number; count: number }>();
  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  take(key: string): RateVerdict {
    const now = this.now();
    for (const [oldest, window] of this.windows) {
      if (now - window.opened < this.windowMs) break;
      this.windows.delete(oldest);
    }
    const window = this.windows.get(key);
    if (window === undefined) {
      this.windows.set(key, { opened: now, count: 1 });
      return { ok: true };
    }
    if (window.count >= this.limit) return { ok: false, retryAfterMs: window.opened + this.windowMs - now };
    window.count++;
    return { ok: true };
  }
}

describe('RateWindow against the Map-order reference', () => {
  it('gives the same verdicts and sizes under any events and clock (equal times, steps back)', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('take' as const), key: fc.nat(4), ms: fc.constant(0) }),
      fc.record({
        kind: fc.constant('tick' as const),
        key: fc.constant(0),
        ms: fc.integer({ min: -5, max: 8 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 10 }),
        fc.array(op, { maxLength: 200 }),
        (limit, windowMs, ops) => {
          let t = 1_000;
          const w = new RateWindow({ limit, windowMs, now: () => t });
          const ref = new MapOrderRateWindow(limit, windowMs, () => t);
          for (const o of ops) {
            if (o.kind === 'tick') t += o.ms;
            else expect(w.take(`k${o.key}`)).toEqual(ref.take(`k${o.key}`));
            expect(w.size).toBe(ref.windows.size);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('never lets a key past its limit within one window, over many keys and windows', () => {
    let t = 0;
    const w = new RateWindow({ limit: 3, windowMs: 100, now: () => t });
    const counts = new Map<string, { opened: number; n: number }>();
    for (let i = 0; i < 300_000; i++) {
      t += i % 5 === 0 ? 1 : 0;
      const key = `k${(i * 7919) % 500}`;
      const verdict = w.take(key);
      const c = counts.get(key);
      if (c === undefined || t - c.opened >= 100) {
        if (!verdict.ok) throw new Error(`${key} refused in a fresh window at ${t}`);
        counts.set(key, { opened: t, n: 1 });
      } else if (verdict.ok && ++c.n > 3) {
        throw new Error(`${key} let past its limit at ${t}`);
      }
      if (w.size > 500) throw new Error(`${w.size} windows for 500 keys`);
    }
    expect(counts.size).toBe(500);
  });
});
