import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseHex } from '../../src/bytes/index.js';
import { SidecarError } from '../../src/errors/index.js';
import {
  idOf,
  parseJsonAnswer,
  RESPONSE_ID_PATTERN,
  type SseEvent,
  SseParser,
  withResponseId,
} from '../../src/proxy/index.js';

/**
 * Properties of the parsers that read what clients and the upstream send (request bodies, SSE
 * streams, ids, nonces). Each run is bounded and seeded, so a failure reproduces.
 */
const RUNS = { numRuns: 300, seed: 0x5eed } as const;
const encoder = new TextEncoder();

/** Bytes that look like SSE: field names, separators, CR/LF in every combination, UTF-8, junk. */
const sseLike = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        'data:',
        'data: ',
        'event:',
        'id:',
        ':',
        ' ',
        '\r',
        '\n',
        '\r\n',
        '\n\n',
        '[DONE]',
        'é',
        '日本',
        '{"id":"x"}',
      ),
      fc.string({ maxLength: 8 }),
    ),
    { maxLength: 60 },
  )
  .map((parts) => encoder.encode(parts.join('')));

/** Splits bytes at arbitrary cut points (empty chunks included). */
const chunked = (bytes: Uint8Array, cuts: number[]): Uint8Array[] => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let start = 0;
  for (const p of points) {
    out.push(bytes.subarray(start, p));
    start = p;
  }
  out.push(bytes.subarray(start));
  return out;
};

const parseAll = (chunks: Uint8Array[], maxLine?: number): SseEvent[] => {
  const parser = maxLine === undefined ? new SseParser() : new SseParser(maxLine);
  return chunks.flatMap((c) => parser.push(c));
};

describe('SSE parser (upstream bytes)', () => {
  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        // Lines end at CR, LF or CRLF (HTML SSE spec): no CR survives into an event, and a name
        // never spans two lines. Data lines are joined with LF only.
        for (const event of parseAll([bytes])) {
          expect(event.data ?? '').not.toContain('\r');
          expect(event.event ?? '').not.toMatch(/[\r\n]/);
        }
      }),
      RUNS,
    );
    expect(parseAll([encoder.encode('event: a\rdata: x\r\n\rdata: y\n\n')])).toEqual([
      { event: 'a', data: 'x' },
      { event: undefined, data: 'y' },
    ]);
  });

  it('gives the same events whatever the chunking', () => {
    fc.assert(
      fc.property(
        fc.oneof(sseLike, fc.uint8Array({ maxLength: 512 })),
        fc.array(fc.nat(), { maxLength: 12 }),
        (bytes, cuts) => {
          expect(parseAll(chunked(bytes, cuts))).toEqual(parseAll([bytes]));
          expect(parseAll(Array.from(bytes, (b) => Uint8Array.of(b)))).toEqual(parseAll([bytes]));
        },
      ),
      RUNS,
    );
  });

  it('throws only the documented RangeError when a line outgrows the limit', () => {
    fc.assert(
      fc.property(
        fc.oneof(sseLike, fc.uint8Array({ maxLength: 512 })),
        fc.array(fc.nat(), { maxLength: 8 }),
        (bytes, cuts) => {
          // The longest run of bytes without CR or LF: the only thing the limit may refuse.
          const longestLine = Math.max(
            ...Buffer.from(bytes)
              .toString('latin1')
              .split(/[\r\n]/)
              .map((l) => l.length),
          );
          let events: SseEvent[];
          try {
            events = parseAll(chunked(bytes, cuts), 16);
          } catch (error) {
            expect(error).toBeInstanceOf(RangeError);
            expect((error as Error).message).toBe('SSE line exceeds the maximum length');
            expect(longestLine).toBeGreaterThan(16);
            return;
          }
          // Below the limit it changes nothing: the same events as an unlimited parser.
          expect(events).toEqual(parseAll([bytes]));
        },
      ),
      RUNS,
    );
  });

  it('dispatches exactly the data lines it was given, split by blank lines', () => {
    const payload = fc.string({ maxLength: 40 }).filter((s) => !/[\r\n]/.test(s));
    fc.assert(
      fc.property(
        fc.array(payload, { minLength: 1, maxLength: 10 }),
        fc.constantFrom('\n', '\r', '\r\n'),
        (datas, eol) => {
          const stream = encoder.encode(datas.map((d) => `data: ${d}${eol}${eol}`).join(''));
          expect(parseAll([stream]).map((e) => e.data)).toEqual(datas);
        },
      ),
      RUNS,
    );
  });
});

describe('hex parsing (nonces, hashes, addresses)', () => {
  const hexChars = fc.constantFrom(...'0123456789abcdefABCDEF'.split(''));
  const hexString = fc.array(hexChars, { maxLength: 140 }).map((c) => c.join(''));
  const anyText = fc.oneof(
    hexString,
    fc.string({ maxLength: 140 }),
    fc.string({ unit: 'binary', maxLength: 80 }),
  );

  it('either decodes exactly or throws a 400 SidecarError naming the field, never the value', () => {
    fc.assert(
      fc.property(
        anyText,
        fc.option(fc.integer({ min: 0, max: 70 }), { nil: undefined }),
        fc.boolean(),
        (raw, bytes, allowPrefix) => {
          const value = `${raw}`;
          const options = { allowPrefix, ...(bytes === undefined ? {} : { bytes }) };
          try {
            const out = parseHex('nonce', value, options);
            const body = allowPrefix && /^0x/i.test(value) ? value.slice(2) : value;
            expect(Buffer.from(out).toString('hex')).toBe(body.toLowerCase());
            if (bytes !== undefined) expect(out.length).toBe(bytes);
          } catch (error) {
            expect(error).toBeInstanceOf(SidecarError);
            const e = error as SidecarError;
            expect(e.status).toBe(400);
            expect(e.param).toBe('nonce');
            // Never echo what the client sent: a long enough value would be recognisable.
            if (value.length >= 12) expect(e.message).not.toContain(value);
          }
        },
      ),
      RUNS,
    );
  });

  it('accepts every 32-byte nonce in either case and rejects every other length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 40 }), fc.boolean(), (bytes, upper) => {
        let hex = Buffer.from(bytes).toString('hex');
        if (upper) hex = hex.toUpperCase();
        if (bytes.length === 32) expect(parseHex('nonce', hex, { bytes: 32 })).toEqual(bytes);
        else expect(() => parseHex('nonce', hex, { bytes: 32 })).toThrow(SidecarError);
      }),
      RUNS,
    );
  });
});

describe('response ids', () => {
  it('RESPONSE_ID_PATTERN never lets a path separator, percent, control or non-ASCII character through', () => {
    const plain = fc.stringMatching(/^[A-Za-z0-9._:~-]{1,200}$/);
    const hostile = fc.constantFrom(
      '/',
      '\\',
      '%',
      '?',
      '#',
      ' ',
      '\r',
      '\n',
      '\0',
      '\u007f',
      'é',
      '\u202e',
      '\ud83d\ude00',
    );
    fc.assert(
      fc.property(
        plain,
        fc.nat(),
        hostile,
        fc.string({ unit: 'binary', maxLength: 300 }),
        (id, at, bad, random) => {
          expect(RESPONSE_ID_PATTERN.test(id)).toBe(true);
          const spliced = id.slice(0, at % (id.length + 1)) + bad + id.slice(at % (id.length + 1));
          expect(RESPONSE_ID_PATTERN.test(spliced)).toBe(false);
          if (RESPONSE_ID_PATTERN.test(random)) {
            expect(random.length).toBeLessThanOrEqual(256);
            expect(random).toMatch(/^[\x21-\x7e]+$/);
            expect(random).not.toMatch(/[/\\%?#]/);
          }
        },
      ),
      RUNS,
    );
    expect(RESPONSE_ID_PATTERN.test('a'.repeat(257))).toBe(false);
  });

  it('idOf never throws and only returns a string id that matches the pattern', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.anything(), fc.record({ id: fc.oneof(fc.string({ maxLength: 300 }), fc.anything()) })),
        (value) => {
          const id = idOf(value);
          const own =
            typeof value === 'object' && value !== null && !Array.isArray(value)
              ? (value as { id?: unknown }).id
              : undefined;
          if (id === undefined) {
            // Refused only when there is no string id that the pattern allows.
            expect(typeof own === 'string' && RESPONSE_ID_PATTERN.test(own)).toBe(false);
            return;
          }
          expect(RESPONSE_ID_PATTERN.test(id)).toBe(true);
          expect(own).toBe(id);
        },
      ),
      RUNS,
    );
  });
});

describe('JSON response bodies (parseJsonAnswer, withResponseId)', () => {
  const freshId = () => 'chatcmpl-000000000000000000000000';
  /** What the proxy does with an answer whose id is free: pass it through, or inject a fresh id. */
  const prepareJsonBody = (bytes: Uint8Array, newId: () => string) => {
    const answer = parseJsonAnswer(bytes);
    if (answer === undefined) return undefined;
    if (answer.id !== undefined) return { body: bytes, id: answer.id, injected: false };
    const id = newId();
    return { body: withResponseId(answer, id), id, injected: true };
  };

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 1024 }),
          fc.json().map((j) => encoder.encode(j)),
        ),
        (bytes) => {
          const prepared = prepareJsonBody(bytes, freshId);
          let value: unknown;
          try {
            value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
          } catch {
            value = undefined;
          }
          const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
          // Unsigned exactly when the bytes are not a JSON object; otherwise a usable id, and the
          // upstream's own bytes whenever it gave that id itself.
          expect(prepared !== undefined).toBe(isObject);
          if (prepared === undefined) return;
          expect(RESPONSE_ID_PATTERN.test(prepared.id)).toBe(true);
          if (!prepared.injected) expect(prepared.body).toBe(bytes);
        },
      ),
      RUNS,
    );
  });

  it('passes an object with a usable id through byte for byte, and injects one otherwise', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }),
        fc.option(
          fc.oneof(fc.stringMatching(/^[A-Za-z0-9._:~-]{1,40}$/), fc.string({ maxLength: 20 }), fc.integer()),
          {
            nil: undefined,
          },
        ),
        (object, id) => {
          const value: Record<string, unknown> = { ...object };
          if (id === undefined) delete value['id'];
          else value['id'] = id;
          const bytes = encoder.encode(JSON.stringify(value));
          const prepared = prepareJsonBody(bytes, freshId);
          expect(prepared).toBeDefined();
          if (prepared === undefined) return;
          const usable = typeof id === 'string' && RESPONSE_ID_PATTERN.test(id);
          expect(prepared.injected).toBe(!usable);
          if (usable) {
            expect(prepared.body).toBe(bytes);
            expect(prepared.id).toBe(id);
            return;
          }
          const parsed = JSON.parse(new TextDecoder().decode(prepared.body)) as Record<string, unknown>;
          // First key, except after integer-like keys, which JavaScript always orders first.
          const keys = Object.keys(parsed).filter((k) => !/^(0|[1-9]\d*)$/.test(k));
          expect(keys[0]).toBe('id');
          expect(parsed['id']).toBe(prepared.id);
          expect(prepared.id).toBe(freshId());
          const { id: _a, ...restIn } = value;
          const { id: _b, ...restOut } = parsed;
          expect(restOut).toEqual(restIn);
        },
      ),
      RUNS,
    );
  });

  it('leaves non-objects (arrays, scalars, invalid UTF-8) unsigned', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(fc.jsonValue(), { maxLength: 4 }),
          fc.string(),
          fc.double(),
          fc.boolean(),
          fc.constant(null),
        ),
        (value) => {
          const bytes = encoder.encode(JSON.stringify(value) ?? 'null');
          expect(prepareJsonBody(bytes, freshId)).toBeUndefined();
        },
      ),
      RUNS,
    );
    expect(prepareJsonBody(Uint8Array.of(0x7b, 0xff, 0x7d), freshId)).toBeUndefined();
  });
});
