import { SidecarError } from '../errors/index.js';
import { idOf } from './response-id.js';

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** Deepest nesting a request body may have; OpenAI bodies are a handful of levels deep. */
export const MAX_JSON_DEPTH = 64;

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The deepest nesting of `{`/`[` in JSON text, stopping as soon as it passes `limit`. One pass over
 * the bytes, no allocation: a deeply nested body is refused before JSON.parse builds it (a 10 MB body
 * of `[` took JSON.parse over a second and half a gigabyte). Brackets inside strings do not count.
 *
 * String contents, most of a large prompt's bytes, are skipped with `indexOf` (native) from quote to
 * quote instead of a JS loop over every byte (100 KB of prompt: ~300 µs → ~10 µs). A quote ends the
 * string when an even number of backslashes precedes it inside the string: exactly where the
 * byte-at-a-time rule (a backslash skips the next byte) ends it. test/proxy/json-body.test.ts checks
 * both rules agree on random input.
 */
export const jsonDepthExceeds = (bytes: Uint8Array, limit: number): boolean => {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let depth = 0;
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i];
    if (b === QUOTE) {
      const open = i;
      for (;;) {
        const close = buf.indexOf(QUOTE, i + 1);
        if (close === -1) return false;
        let slashes = 0;
        while (close - 1 - slashes > open && buf[close - 1 - slashes] === BACKSLASH) slashes++;
        i = close;
        if (slashes % 2 === 0) break;
      }
    } else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
      if (++depth > limit) return true;
    } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
};

/**
 * Refuses a request body that is not JSON (UTF-8, at most MAX_JSON_DEPTH deep) with a 400; returns
 * the parsed value, so that nothing parses the same bytes twice.
 */
export const assertJsonRequest = (body: Uint8Array): unknown => {
  if (jsonDepthExceeds(body, MAX_JSON_DEPTH)) {
    throw new SidecarError(`request body nests deeper than ${MAX_JSON_DEPTH} levels`, {
      status: 400,
      code: 'json_too_deep',
    });
  }
  try {
    return JSON.parse(decoder.decode(body));
  } catch {
    throw new SidecarError('request body is not valid JSON', { status: 400, code: 'invalid_json' });
  }
};

export interface JsonAnswer {
  value: Record<string, unknown>;
  /** The upstream's own id, when it gave a usable one. */
  id: string | undefined;
}

/** A non-streaming answer as a JSON object; undefined when it is not one (it is then sent unsigned). */
export const parseJsonAnswer = (bytes: Uint8Array): JsonAnswer | undefined => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  return { value: parsed as Record<string, unknown>, id: idOf(parsed) };
};

/**
 * The answer re-serialized once with `id` as its first key (the upstream gave none, or its id was
 * taken). The bytes returned are the bytes sent and hashed (docs/protocol.md, Signed text).
 */
export const withResponseId = (answer: JsonAnswer, id: string): Uint8Array => {
  const { id: _dropped, ...rest } = answer.value;
  return encoder.encode(JSON.stringify({ id, ...rest }));
};
