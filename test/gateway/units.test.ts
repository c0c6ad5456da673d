import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDuration, parseHeader } from '../../src/cli/gateway.js';
import { AcceptedIds } from '../../src/gateway/accepted-ids.js';
import { HeldBytes } from '../../src/gateway/held-bytes.js';
import { PolicyError, parsePolicy, SseEventSplitter } from '../../src/gateway/index.js';
import { framingError } from '../../src/gateway/sse-events.js';
import { guardedBody } from '../../src/gateway/wire.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

const split = (bytes: Uint8Array, cuts: number[]): string[] => {
  const s = new SseEventSplitter();
  const out: string[] = [];
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length)].sort((a, b) => a - b)) {
    out.push(...s.push(bytes.subarray(at, cut)).map(dec));
    at = cut;
  }
  out.push(...s.push(bytes.subarray(at)).map(dec), ...s.finish().map(dec));
  return out;
};

describe('SseEventSplitter', () => {
  const body =
    'data: {"id":"a"}\n\n: comment\ndata: x\r\ndata: y\r\n\r\nevent: e\rdata: z\r\rdata: [DONE]\n\n';
  const events = [
    'data: {"id":"a"}\n\n',
    ': comment\ndata: x\r\ndata: y\r\n\r\n',
    'event: e\rdata: z\r\r',
    'data: [DONE]\n\n',
  ];

  it('splits LF, CRLF and CR events, keeping their exact bytes', () => {
    expect(split(enc(body), [])).toEqual(events);
  });

  it('gives the same events fed one byte at a time and cut anywhere', () => {
    expect(split(enc(body), [...Array(body.length).keys()])).toEqual(events);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: body.length }), { maxLength: 12 }), (cuts) => {
        expect(split(enc(body), cuts)).toEqual(events);
      }),
    );
  });

  it('keeps a cut event pending (a stream that stopped mid-event)', () => {
    const s = new SseEventSplitter();
    expect(s.push(enc('data: {"id":"a"}\n\ndata: par')).map(dec)).toEqual(['data: {"id":"a"}\n\n']);
    expect(s.rest).toBe(9);
  });
});

describe('policy', () => {
  it('reads every field and normalises hex', () => {
    const p = parsePolicy(
      JSON.stringify({
        acceptTcb: ['UpToDate', 'SWHardeningNeeded'],
        mrtd: [`0x${'AB'.repeat(48)}`],
        rtmr3: ['cd'.repeat(48)],
        composeHash: 'ef'.repeat(32),
        osImageHash: ['01'.repeat(32)],
        requireGpu: false,
        expectedSigningAddress: `0x${'12'.repeat(20)}`,
        signingAlgo: 'ed25519',
      }),
    );
    expect(p).toMatchObject({
      mrtd: ['ab'.repeat(48)],
      requireGpu: false,
      allowSimulated: false,
      signingAlgo: 'ed25519',
    });
    expect(parsePolicy('{}', { allowSimulated: true }).allowSimulated).toBe(true);
  });

  it('refuses unknown keys and malformed values, naming the field only', () => {
    expect(() => parsePolicy('{"mrdt":["00"]}')).toThrow(PolicyError);
    expect(() => parsePolicy('{"mrdt":["00"]}')).toThrow(/Unrecognized key|mrdt/);
    expect(() => parsePolicy(`{"composeHash":"${'zz'.repeat(32)}"}`)).toThrow(/composeHash/);
    expect(() => parsePolicy('{"acceptTcb":["Fine"]}')).toThrow(/acceptTcb/);
    expect(() => parsePolicy('not json')).toThrow(/not JSON/);
  });
});

describe('gateway CLI values', () => {
  it('parses durations', () => {
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('45')).toBe(45_000);
    expect(() => parseDuration('10 minutes')).toThrow(/duration/);
    expect(() => parseDuration('10ms')).toThrow(/between/);
  });

  it('parses headers without echoing their values', () => {
    expect(parseHeader('X-Api-Version: 2')).toEqual(['x-api-version', '2']);
    expect(() => parseHeader('no colon secret-value')).toThrow(/Name: value/);
    expect(() => parseHeader('no colon secret-value')).not.toThrow(/secret-value/);
  });
});

describe('framingError', () => {
  const bad = (event: string, afterDone = false) => framingError(enc(event), afterDone);
  it('accepts data events with a JSON object, exactly [DONE], and comments', () => {
    expect(bad('data: {"id":"a"}\n\n')).toBeUndefined();
    expect(bad('data: [DONE]\n\n')).toBeUndefined();
    expect(bad(': keep-alive\n\n')).toBeUndefined();
    expect(bad('data:{"a":\ndata:1}\r\n\r\n')).toBeUndefined();
  });
  it('refuses [DONE] with anything after it, other fields, non-objects, and events after [DONE]', () => {
    expect(bad('data: [DONE]x\n\n')).toMatch(/\[DONE\]/);
    expect(bad('data: [DONE] \n\n')).toMatch(/\[DONE\]/);
    expect(bad('event: error\ndata: {}\n\n')).toMatch(/neither data nor a comment/);
    expect(bad('id: 1\ndata: {}\n\n')).toBeDefined();
    expect(bad('data: "text"\n\n')).toMatch(/not a JSON object/);
    expect(bad('data: nope\n\n')).toMatch(/not JSON/);
    expect(bad('data: {}\n\n', true)).toMatch(/after data: \[DONE\]/);
  });
});

describe('AcceptedIds', () => {
  it('refuses a repeat; forgets after retainMs and beyond maxIds, oldest first', () => {
    let now = 0;
    const ids = new AcceptedIds({ retainMs: 1000, maxIds: 2, now: () => now });
    expect(ids.accept('a')).toBe(true);
    expect(ids.accept('a')).toBe(false);
    now = 500;
    expect(ids.accept('b')).toBe(true);
    expect(ids.accept('c')).toBe(true);
    expect(ids.size).toBe(2);
    expect(ids.accept('a')).toBe(true);
    now = 2000;
    expect(ids.accept('b')).toBe(true);
    expect(ids.size).toBe(1);
  });
});

describe('HeldBytes', () => {
  it('shares one bound across exchanges and gives back on release', () => {
    const held = new HeldBytes(100);
    const a = held.share();
    const b = held.share();
    a.take(60);
    expect(() => b.take(50)).toThrow(/gateway_busy|holds 100 bytes/);
    b.take(40);
    a.release();
    expect(held.current).toBe(40);
    b.take(60);
    b.release();
    expect(held.current).toBe(0);
  });
});

describe('guardedBody', () => {
  it('a web stream (a 0G or caller fetch body) that stalls mid-answer: 504 upstream_timeout, and the stream is cancelled', async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => c.enqueue(enc('data: {}\n\n')),
      cancel: () => {
        cancelled = true;
      },
    });
    const seen: string[] = [];
    const read = async () => {
      for await (const chunk of guardedBody(body, { take: () => undefined, idleMs: 50 }, 'stream'))
        seen.push(dec(chunk));
    };
    await expect(read()).rejects.toMatchObject({ code: 'upstream_timeout' });
    await new Promise((resolve) => setImmediate(resolve));
    expect({ seen, cancelled }).toEqual({ seen: ['data: {}\n\n'], cancelled: true });
  });
});
