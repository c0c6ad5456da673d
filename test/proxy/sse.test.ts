import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { SseLimitError, SseParser, SseTap } from '../../src/proxy/index.js';

const enc = new TextEncoder();
const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

const vllmStream = (id: string, crlf = false): Uint8Array => {
  const nl = crlf ? '\r\n' : '\n';
  const parts = [
    `: ping${nl}${nl}`,
    `data: {"id":"${id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}${nl}${nl}`,
    `data:{"id":"${id}","choices":[{"index":0,"delta":{"content":"héllo ✓ 😀"}}]}${nl}${nl}`,
    `data: {"id":"${id}","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}${nl}${nl}`,
    `data: [DONE]${nl}${nl}`,
  ];
  return enc.encode(parts.join(''));
};

/** Splits bytes into chunks at the given cut points. */
const cut = (bytes: Uint8Array, points: number[]): Uint8Array[] => {
  const sorted = [...new Set(points.filter((p) => p > 0 && p < bytes.length))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let start = 0;
  for (const p of sorted) {
    out.push(bytes.subarray(start, p));
    start = p;
  }
  out.push(bytes.subarray(start));
  return out;
};

/**
 * Drives a tap as the proxy does: once it proposes, the id is "claimed" (`claim` decides which: by
 * default the upstream's own, or `chatcmpl-generated` when it gave none) and confirmed.
 */
const runTap = (
  chunks: Uint8Array[],
  claim: (upstreamId: string | undefined) => string = (upstreamId) => upstreamId ?? 'chatcmpl-generated',
) => {
  const tap = new SseTap();
  const sent: Uint8Array[] = [];
  let id: string | undefined;
  const confirm = (): void => {
    id = claim(tap.upstreamId);
    sent.push(...tap.confirm(id));
  };
  for (const c of chunks) {
    const out = tap.push(c);
    if (tap.proposed) confirm();
    else sent.push(...out);
  }
  tap.endOfInput();
  if (tap.proposed) confirm();
  const outcome = tap.end();
  return { sent: Buffer.concat(sent), outcome: { ...outcome, id } };
};

describe('SseParser', () => {
  it('handles LF, CRLF and CR line endings, data with and without a space, comments, multi-line data', () => {
    const p = new SseParser();
    const events = p.push(enc.encode(': c\r\ndata: a\rdata:b\n\nevent: x\ndata: [DONE]\r\n\r\n'));
    expect(events).toEqual([
      { data: 'a\nb', event: undefined },
      { data: '[DONE]', event: 'x' },
    ]);
  });

  it('gives the same events for any chunking of any mix of CR, LF and CRLF', () => {
    const piece = fc.constantFrom('data: a', 'data:b', 'event: e', ': c', 'data: [DONE]', 'id: 1', 'x', '');
    const eol = fc.constantFrom('\n', '\r', '\r\n');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(piece, eol), { maxLength: 30 }),
        fc.array(fc.integer({ min: 0, max: 400 }), { maxLength: 12 }),
        (lines, cuts) => {
          const bytes = enc.encode(lines.map(([l, e]) => l + e).join(''));
          const whole = new SseParser().push(bytes);
          const p = new SseParser();
          const chunked = [];
          let at = 0;
          for (const cut of [...cuts.map((c) => c % (bytes.length + 1))].sort((a, b) => a - b)) {
            chunked.push(...p.push(bytes.subarray(at, cut)));
            at = cut;
          }
          chunked.push(...p.push(bytes.subarray(at)));
          expect(chunked).toEqual(whole);
        },
      ),
    );
  });

  it('keeps a pending CR across an empty chunk (the LF completing the CRLF may come after it)', () => {
    const p = new SseParser();
    expect(p.push(enc.encode('event: e\n\ndata: a\r'))).toEqual([{ data: undefined, event: 'e' }]);
    expect(p.push(new Uint8Array(0))).toEqual([]);
    expect(p.push(enc.encode('\n'))).toEqual([]);
    expect(p.push(enc.encode('\n'))).toEqual([{ data: 'a', event: undefined }]);
  });

  it('holds a CR at the end of a chunk until it knows whether LF follows', () => {
    const p = new SseParser();
    expect(p.push(enc.encode('data: a\r'))).toEqual([]);
    // "\r\n" then a lone "\r" (a blank line): the event is dispatched; the next "\n" completes that CRLF.
    expect(p.push(enc.encode('\n\r'))).toEqual([{ data: 'a', event: undefined }]);
    expect(p.push(enc.encode('\n'))).toEqual([]);
    expect(p.push(enc.encode('data: b\n\n'))).toEqual([{ data: 'b', event: undefined }]);
  });

  it('never splits a multi-byte character across chunks', () => {
    const bytes = enc.encode('data: 😀é\n\n');
    for (let i = 1; i < bytes.length; i++) {
      const p = new SseParser();
      const events = [...p.push(bytes.subarray(0, i)), ...p.push(bytes.subarray(i))];
      expect(events).toEqual([{ data: '😀é', event: undefined }]);
    }
  });

  it('refuses a line longer than its bound', () => {
    const p = new SseParser(16);
    expect(() => p.push(enc.encode(`data: ${'x'.repeat(32)}`))).toThrow(/maximum length/);
  });
});

describe('SseTap', () => {
  const body = vllmStream('chatcmpl-abc');

  it('gives one digest for whole, 1-byte and random chunkings, and passes bytes through unchanged', () => {
    const whole = runTap([body]);
    expect(whole.sent.equals(Buffer.from(body))).toBe(true);
    expect(whole.outcome).toEqual({
      complete: true,
      id: 'chatcmpl-abc',
      responseHash: sha(body),
      rewritten: false,
    });
    const bytewise = runTap(
      cut(
        body,
        Array.from({ length: body.length }, (_, i) => i),
      ),
    );
    expect(bytewise.outcome.responseHash).toBe(sha(body));
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: body.length - 1 }), { maxLength: 40 }), (points) => {
        const r = runTap(cut(body, points));
        expect(r.sent.equals(Buffer.from(body))).toBe(true);
        expect(r.outcome.responseHash).toBe(sha(body));
        expect(r.outcome.id).toBe('chatcmpl-abc');
      }),
      { numRuns: 300 },
    );
  });

  it('handles CRLF streams', () => {
    const crlf = vllmStream('chatcmpl-crlf', true);
    const r = runTap(cut(crlf, [3, 50, 51, 120]));
    expect(r.outcome).toMatchObject({ complete: true, id: 'chatcmpl-crlf', responseHash: sha(crlf) });
  });

  it('holds bytes until the first data event proposes the id, and releases them on confirm', () => {
    const tap = new SseTap();
    expect(tap.push(enc.encode(': keep-alive\n\ndata: {"id":"cmpl-1",'))).toEqual([]);
    expect(tap.proposed).toBe(false);
    expect(tap.push(enc.encode('"choices":[]}\n\n'))).toEqual([]);
    expect(tap.proposed).toBe(true);
    expect(tap.upstreamId).toBe('cmpl-1');
    const out = tap.confirm('cmpl-1');
    expect(Buffer.concat(out).toString()).toBe(': keep-alive\n\ndata: {"id":"cmpl-1","choices":[]}\n\n');
  });

  it('is incomplete without [DONE] or with an in-band error event', () => {
    const noDone = enc.encode('data: {"id":"chatcmpl-a","choices":[]}\n\n');
    expect(runTap([noDone]).outcome.complete).toBe(false);
    const errored = enc.encode(
      'data: {"id":"chatcmpl-a","choices":[]}\n\ndata: {"error":{"message":"oom","code":500}}\n\ndata: [DONE]\n\n',
    );
    expect(runTap([errored]).outcome.complete).toBe(false);
    const mentionsError = enc.encode(
      'data: {"id":"chatcmpl-a","choices":[{"delta":{"content":"\\"error\\""}}]}\n\ndata: [DONE]\n\n',
    );
    expect(runTap([mentionsError]).outcome.complete).toBe(true);
  });

  it('injects a generated id into every event when the upstream gives none, hashing what it sends', () => {
    const noId = enc.encode(
      'data: {"object":"chunk","choices":[1]}\n\ndata: {"choices":[2]}\n\ndata: [DONE]\n\n',
    );
    const r = runTap(cut(noId, [5, 40]));
    const text = r.sent.toString();
    expect(text).toBe(
      'data: {"id":"chatcmpl-generated","object":"chunk","choices":[1]}\n\n' +
        'data: {"id":"chatcmpl-generated","choices":[2]}\n\ndata: [DONE]\n\n',
    );
    expect(r.outcome).toEqual({
      complete: true,
      id: 'chatcmpl-generated',
      responseHash: sha(r.sent),
      rewritten: true,
    });
  });
});

describe('SseTap against a hostile upstream', () => {
  const first = 'data: {"id":"chatcmpl-h","choices":[{"delta":{"content":"hi"}}]}\n\n';
  const outcomeOf = (text: string) => runTap([enc.encode(text)]).outcome;

  it('never calls a stream complete when an in-band error is spelled with JSON escapes', () => {
    expect(outcomeOf(`${first}data: {"\\u0065rror":{"message":"oom"}}\n\ndata: [DONE]\n\n`).complete).toBe(
      false,
    );
    expect(outcomeOf(`${first}data: {"err\\u006fr":"x"}\n\ndata: [DONE]\n\n`).complete).toBe(false);
  });

  it('treats an `event: error` event, an older vLLM error object and unparsable error text as errors', () => {
    expect(outcomeOf(`${first}event: error\ndata: {"message":"oom"}\n\ndata: [DONE]\n\n`).complete).toBe(
      false,
    );
    expect(outcomeOf(`${first}event: error\n\ndata: [DONE]\n\n`).complete).toBe(false);
    expect(
      outcomeOf(`${first}data: {"object":"error","message":"oom","code":500}\n\ndata: [DONE]\n\n`).complete,
    ).toBe(false);
    expect(outcomeOf(`${first}data: {"error": \n\ndata: [DONE]\n\n`).complete).toBe(false);
  });

  it('decides on parsed JSON: content that merely mentions errors, or `"error": null`, is fine', () => {
    expect(
      outcomeOf(
        `${first}data: {"choices":[{"delta":{"content":"an error\\n"}}],"error":null}\n\ndata: [DONE]\n\n`,
      ).complete,
    ).toBe(true);
    expect(
      outcomeOf(`${first}data: {"choices":[{"finish_reason":"error"}]}\n\ndata: [DONE]\n\n`).complete,
    ).toBe(true);
  });

  it('is incomplete when anything follows [DONE] or the last line is left unterminated', () => {
    expect(outcomeOf(`${first}data: [DONE]\n\ndata: {"choices":[]}\n\n`).complete).toBe(false);
    expect(outcomeOf(`${first}data: [DONE]\n\nevent: ping\n\n`).complete).toBe(false);
    expect(outcomeOf(`${first}data: [DONE]\n\ndata: x`).complete).toBe(false);
    expect(outcomeOf(`${first}data: [DONE]\n\n`).complete).toBe(true);
  });

  it('rewrites every event to the id it is given when the upstream id was taken', () => {
    const r = runTap(
      [enc.encode(`${first}data: {"id":"chatcmpl-h","choices":[]}\n\ndata: [DONE]\n\n`)],
      () => 'chatcmpl-fresh',
    );
    expect(r.sent.toString()).toBe(
      'data: {"id":"chatcmpl-fresh","choices":[{"delta":{"content":"hi"}}]}\n\n' +
        'data: {"id":"chatcmpl-fresh","choices":[]}\n\ndata: [DONE]\n\n',
    );
    expect(r.outcome).toMatchObject({
      complete: true,
      id: 'chatcmpl-fresh',
      rewritten: true,
      responseHash: sha(r.sent),
    });
    expect(r.sent.includes('chatcmpl-h"')).toBe(false);
  });

  it('bounds what it holds before the first data event', () => {
    const tap = new SseTap({ maxHeldBytes: 1024, maxLineBytes: 4096 });
    const comments = enc.encode(': padding padding padding padding\n'.repeat(20));
    expect(tap.push(comments)).toEqual([]);
    expect(() => tap.push(comments)).toThrow(SseLimitError);
  });
});

describe('SseParser bounds', () => {
  it('refuses an event of many short data lines beyond the limit', () => {
    const p = new SseParser(1024);
    expect(() => p.push(enc.encode('data: x\n'.repeat(600)))).toThrow(SseLimitError);
  });

  it('assembles a line sent in many pieces in linear time (pieces are joined once)', () => {
    // Counts the bytes copied: a re-copy per piece would copy ~n²/2 bytes for n pieces.
    const p = new SseParser(16 * 1024 * 1024);
    const piece = enc.encode('x'.repeat(1024));
    const copied = { bytes: 0 };
    const realFrom = Uint8Array.from.bind(Uint8Array);
    const realSet = Uint8Array.prototype.set;
    const fromSpy = vi.spyOn(Uint8Array, 'from').mockImplementation(((src: ArrayLike<number>) => {
      copied.bytes += src.length;
      return realFrom(src);
    }) as typeof Uint8Array.from);
    const setSpy = vi.spyOn(Uint8Array.prototype, 'set').mockImplementation(function (
      this: Uint8Array,
      src: ArrayLike<number>,
      offset?: number,
    ) {
      copied.bytes += src.length;
      realSet.call(this, src, offset);
    });
    try {
      p.push(enc.encode('data: '));
      for (let i = 0; i < 2048; i++) p.push(piece);
      const events = p.push(enc.encode('\n\n'));
      expect(events[0]?.data?.length).toBe(2048 * 1024);
    } finally {
      fromSpy.mockRestore();
      setSpy.mockRestore();
    }
    // Each piece is copied once when kept (2 MiB in all), not once per later piece (~2 GiB).
    expect(copied.bytes).toBeLessThan(3 * 2048 * 1024);
  });
});
