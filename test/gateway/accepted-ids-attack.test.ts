import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { OldestFirst } from '../../src/concurrency/index.js';
import { AcceptedIds } from '../../src/gateway/accepted-ids.js';

/**
 * Attacks on the gateway's replay list since it keeps its own oldest-first order (OldestFirst): driven
 * side by side with the Map-order reference below (the same rules, the oldest id found as the first
 * one its Map iterates).
 */
class MapOrderAcceptedIds {
  readonly ids = new Map<string, number>();
  constructor(
    private readonly retainMs: number,
    private readonly maxIds: number,
    private readonly now: () => number,
  ) {}

  accept(id: string): boolean {
    const now = this.now();
    for (const [old, at] of this.ids) {
      if (now - at < this.retainMs) break;
      this.ids.delete(old);
    }
    if (this.ids.has(id)) return false;
    this.ids.set(id, now);
    if (this.ids.size > this.maxIds) {
      const oldest = this.ids.keys().next();
      if (oldest.done !== true) this.ids.delete(oldest.value);
    }
    return true;
  }
}

const orderOf = (ids: AcceptedIds): OldestFirst<string, { key: string }> =>
  Reflect.get(ids, 'ids') as OldestFirst<string, { key: string }>;

describe('AcceptedIds against the Map-order reference', () => {
  it('accepts and refuses the same ids under any sequence (small bounds, equal times, clock steps back)', () => {
    const op = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({ kind: fc.constant('accept' as const), id: fc.nat(5), ms: fc.constant(0) }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('tick' as const),
          id: fc.constant(0),
          ms: fc.integer({ min: -4, max: 6 }),
        }),
      },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(op, { maxLength: 200 }),
        (maxIds, retainMs, ops) => {
          let t = 1_000;
          const ids = new AcceptedIds({ retainMs, maxIds, now: () => t });
          const ref = new MapOrderAcceptedIds(retainMs, maxIds, () => t);
          for (const o of ops) {
            if (o.kind === 'tick') t += o.ms;
            // Ids differing only in case are different ids here (the gateway compares them exactly).
            else {
              const id = o.id % 2 === 0 ? `chatcmpl-${o.id}` : `CHATCMPL-${o.id - 1}`;
              expect(ids.accept(id)).toBe(ref.accept(id));
            }
            expect(ids.size).toBe(ref.ids.size);
            expect(ids.size).toBeLessThanOrEqual(maxIds);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('never accepts an id twice while it is among the newest maxIds within retainMs (monotonic clock)', () => {
    let t = 0;
    const maxIds = 1000;
    const retainMs = 50;
    const ids = new AcceptedIds({ retainMs, maxIds, now: () => t });
    // id → the index (count of ids accepted before it) and time of its latest acceptance.
    const accepted = new Map<string, { index: number; at: number }>();
    let count = 0;
    let seed = 99;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    let longest = 0;
    for (let i = 0; i < 300_000; i++) {
      if (rand(10) === 0) t += 1;
      const id = `id-${rand(3000)}`;
      // Held: accepted within retainMs and among the newest maxIds accepted.
      const last = accepted.get(id);
      const held = last !== undefined && count - last.index <= maxIds && t - last.at < retainMs;
      const ok = ids.accept(id);
      if (ok === held) throw new Error(`${id} ${ok ? 'accepted again' : 'refused'} at ${t}`);
      if (ok) accepted.set(id, { index: count++, at: t });
      longest = Math.max(longest, orderOf(ids).queued);
    }
    expect(longest).toBeLessThanOrEqual(2 * maxIds + 1024 + 1);
  });
});
