import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonDepthExceeds, MAX_JSON_DEPTH } from '../../src/proxy/index.js';

/** The byte-at-a-time rule the scan replaced: a backslash inside a string skips the next byte. */
const referenceDepthExceeds = (bytes: Uint8Array, limit: number): boolean => {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (inString) {
      if (b === 0x5c) i++;
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) {
      inString = true;
    } else if (b === 0x7b || b === 0x5b) {
      if (++depth > limit) return true;
    } else if (b === 0x7d || b === 0x5d) {
      depth--;
    }
  }
  return false;
};

/** Bytes dense in what the scan looks at: quotes, backslash runs, brackets, and some UTF-8. */
const jsonish = fc
  .array(
    fc.oneof(
      fc.constantFrom('"', '\\', '\\\\', '\\"', '[', ']', '{', '}'),
      fc.constantFrom('a', ' ', '\u00e9', '\u4e2d'),
    ),
    {
      maxLength: 200,
    },
  )
  .map((cs) => Buffer.from(cs.join('')));

/** The answer at every limit up to 40: the same as comparing the deepest nesting each scan sees. */
const atEveryLimit = (scan: (b: Uint8Array, l: number) => boolean, b: Uint8Array): boolean[] =>
  Array.from({ length: 41 }, (_, limit) => scan(b, limit));

describe('jsonDepthExceeds', () => {
  it('agrees with the byte-at-a-time scan on random input, at every limit', () => {
    fc.assert(
      fc.property(fc.oneof(jsonish, fc.uint8Array({ maxLength: 200 })), (b) => {
        expect(atEveryLimit(jsonDepthExceeds, b)).toEqual(atEveryLimit(referenceDepthExceeds, b));
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees on real JSON nested around the limit, with escapes and brackets in strings', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 55, max: 70 }),
        fc.string({ unit: 'grapheme', maxLength: 20 }),
        (n, s) => {
          const text = `${'{"a\\\\":["[{\\"", '.repeat(n)}${JSON.stringify(s)}${']}'.repeat(n)}`;
          const bytes = Buffer.from(text);
          expect(jsonDepthExceeds(bytes, MAX_JSON_DEPTH)).toBe(referenceDepthExceeds(bytes, MAX_JSON_DEPTH));
          expect(jsonDepthExceeds(bytes, MAX_JSON_DEPTH)).toBe(2 * n > MAX_JSON_DEPTH);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('takes plain Uint8Arrays as well as Buffers, and a subarray at an offset', () => {
    const inner = Buffer.from(`xx${'['.repeat(3)}"]]]["${']'.repeat(3)}`);
    const view = new Uint8Array(inner.buffer, inner.byteOffset + 2, inner.length - 2);
    expect(jsonDepthExceeds(view, 2)).toBe(true);
    expect(jsonDepthExceeds(view, 3)).toBe(false);
  });
});
