const LF = 0x0a;
const CR = 0x0d;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();
const DATA = encoder.encode('data:');

/**
 * Rewrites an SSE answer line by line so that every `data:` line holding JSON carries its content
 * fields encrypted, as NEAR's inference-proxy does (`SseTransformer` in `src/proxy.rs`): the JSON is
 * re-serialized as `data: <json>` with the line's own ending kept; other lines, blank lines and
 * `data: [DONE]` pass through byte for byte. Lines end in LF (or CRLF): a CR-only stream (allowed by
 * the SSE grammar, never produced by OpenAI-compatible servers) is held whole and fails closed at the
 * line limit.
 *
 * Fails closed: a data line that is not JSON, or a line over the limit, throws (the answer is then
 * refused or cut, never sent in plaintext).
 */
export class SseEncryptor {
  private carry: Uint8Array | undefined;

  constructor(
    private readonly encrypt: (value: unknown) => void,
    private readonly failure: () => Error,
    private readonly maxLineBytes = 16 * 1024 * 1024,
  ) {}

  /** Feeds upstream bytes; returns the bytes to send for every line they complete (maybe none). */
  push(chunk: Uint8Array): Uint8Array {
    const bytes = this.carry === undefined ? chunk : concat(this.carry, chunk);
    this.carry = undefined;
    const out: Uint8Array[] = [];
    let start = 0;
    for (let nl = bytes.indexOf(LF); nl !== -1; nl = bytes.indexOf(LF, start)) {
      out.push(this.line(bytes.subarray(start, nl + 1)));
      start = nl + 1;
    }
    if (start < bytes.length) {
      if (bytes.length - start > this.maxLineBytes) throw this.failure();
      this.carry = Uint8Array.from(bytes.subarray(start));
    }
    return out.length === 1 ? (out[0] as Uint8Array) : concat(...out);
  }

  /** The stream `source` with its data events encrypted; empty pieces (a partial line) are held back. */
  async *transform(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      const out = this.push(chunk);
      if (out.length > 0) yield out;
    }
    const last = this.end();
    if (last.length > 0) yield last;
  }

  /** The upstream ended: an unterminated last line is still transformed, never passed through raw. */
  end(): Uint8Array {
    const rest = this.carry;
    this.carry = undefined;
    return rest === undefined ? new Uint8Array(0) : this.line(rest);
  }

  private line(line: Uint8Array): Uint8Array {
    if (!startsWith(line, DATA)) return line;
    let bodyEnd = line.length;
    if (line[bodyEnd - 1] === LF) bodyEnd--;
    if (line[bodyEnd - 1] === CR) bodyEnd--;
    let text: string;
    try {
      text = strictUtf8.decode(line.subarray(DATA.length, bodyEnd)).trim();
    } catch {
      throw this.failure();
    }
    if (text === '' || text === '[DONE]') return line;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw this.failure();
    }
    this.encrypt(value);
    const head = encoder.encode(`data: ${JSON.stringify(value)}`);
    return concat(head, line.subarray(bodyEnd));
  }
}

const startsWith = (bytes: Uint8Array, prefix: Uint8Array): boolean => {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
};

const concat = (...parts: Uint8Array[]): Uint8Array => {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
