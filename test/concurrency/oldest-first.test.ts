import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OldestFirst } from '../../src/concurrency/index.js';

interface Item {
  key: number;
  n: number;
}

/** An OldestFirst driven as the stores drive it, beside a plain Map given the same operations. */
const owner = () => {
  const reference = new Map<number, Item>();
  const order = new OldestFirst<number, Item>();
  let n = 0;
  const map = {
    get size() {
      return order.size;
    },
    delete(key: number): void {
      reference.delete(key);
      order.delete(key);
    },
  };
  return {
    map,
    order,
    /** delete + set, as the stores re-add a key: it becomes the newest. */
    add(key: number): void {
      reference.delete(key);
      const item = { key, n: n++ };
      reference.set(key, item);
      order.add(item);
    },
    remove(key: number): void {
      map.delete(key);
    },
    /** What a Map's own iteration order says is oldest (the reference). */
    reference(): Item | undefined {
      return reference.values().next().value;
    },
  };
};

describe('OldestFirst', () => {
  it('names the same oldest entry as the Map it follows, under any adds, deletes and trims', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), key: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ kind: fc.constant('remove' as const), key: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ kind: fc.constant('trim' as const), key: fc.constant(0) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const o = owner();
        for (const { kind, key } of ops) {
          if (kind === 'add') o.add(key);
          else if (kind === 'remove') o.remove(key);
          else {
            const oldest = o.order.oldest();
            if (oldest !== undefined) o.remove(oldest.key);
          }
          expect(o.order.oldest()).toBe(o.reference());
        }
      }),
    );
  });

  it('trims from the front across a long run and holds at most about twice the live entries', () => {
    const o = owner();
    let longest = 0;
    // A store at capacity: each new key evicts the oldest; every third key is re-added (a dead item
    // left in the middle); every seventh is deleted out of order.
    for (let key = 0; key < 200_000; key++) {
      o.add(key);
      if (key % 3 === 0 && key > 10) o.add(key - 10);
      if (key % 7 === 0 && key > 20) o.remove(key - 20);
      while (o.map.size > 1000) {
        const oldest = o.order.oldest();
        if (oldest === undefined) throw new Error('lost the order');
        expect(oldest).toBe(o.reference());
        o.remove(oldest.key);
      }
      longest = Math.max(longest, o.order.queued);
    }
    expect(o.map.size).toBe(1000);
    // The bound: 2 × size + 1024 before a rebuild, plus the item that triggers it.
    expect(longest).toBeLessThanOrEqual(2 * 1000 + 1024 + 1);
    expect(o.order.oldest()).toBe(o.reference());
  });

  it('is empty after the owner deleted everything, and after clear', () => {
    const o = owner();
    for (let key = 0; key < 5; key++) o.add(key);
    for (let key = 0; key < 5; key++) o.remove(key);
    expect(o.order.oldest()).toBeUndefined();
    expect(o.order.queued).toBe(0);
    o.add(9);
    o.order.clear();
    expect(o.order.oldest()).toBeUndefined();
  });
});
