import { describe, expect, it } from 'vitest';
import { RateWindow } from '../../src/concurrency/index.js';

const clock = (start = 1_000_000) => {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number): void => {
      now += ms;
    },
  };
};

describe('RateWindow', () => {
  it('allows `limit` events per key and window, then refuses with the time left in the window', () => {
    const t = clock();
    const w = new RateWindow({ limit: 2, windowMs: 60_000, now: t.now });
    expect(w.take('a')).toEqual({ ok: true });
    t.advance(10_000);
    expect(w.take('a')).toEqual({ ok: true });
    t.advance(5_000);
    expect(w.take('a')).toEqual({ ok: false, retryAfterMs: 45_000 });
    // Another key has its own window.
    expect(w.take('b')).toEqual({ ok: true });
    t.advance(44_999);
    expect(w.take('a')).toEqual({ ok: false, retryAfterMs: 1 });
    t.advance(1);
    expect(w.take('a')).toEqual({ ok: true });
  });

  it('keeps memory to the keys active within one window', () => {
    const t = clock();
    const w = new RateWindow({ limit: 1, windowMs: 1_000, now: t.now });
    for (let i = 0; i < 100; i++) w.take(`client-${i}`);
    expect(w.size).toBe(100);
    t.advance(500);
    w.take('client-0');
    expect(w.size).toBe(100);
    t.advance(500);
    w.take('late');
    expect(w.size).toBe(1);
  });

  it('drops an expired window even when a younger one was opened after it for another key', () => {
    const t = clock();
    const w = new RateWindow({ limit: 1, windowMs: 1_000, now: t.now });
    w.take('a');
    t.advance(600);
    w.take('b');
    t.advance(600); // a expired, b has 400 ms left
    expect(w.take('c')).toEqual({ ok: true });
    expect(w.size).toBe(2);
    expect(w.take('b')).toEqual({ ok: false, retryAfterMs: 400 });
    expect(w.take('a')).toEqual({ ok: true });
  });

  it('refuses nonsensical settings', () => {
    expect(() => new RateWindow({ limit: 0, windowMs: 1 })).toThrow(RangeError);
    expect(() => new RateWindow({ limit: 1, windowMs: 0 })).toThrow(RangeError);
  });
});
