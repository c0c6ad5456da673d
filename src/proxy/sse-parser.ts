/**
 * A line-buffered Server-Sent Events parser over bytes (WHATWG HTML, "Parsing an event stream").
 *
 * - Lines end in CRLF, LF or CR; a CR at the end of a chunk may be the first half of a CRLF, so it is
 *   held until the next byte arrives.
 * - Works on bytes: CR and LF never occur inside a multi-byte UTF-8 sequence, so every complete line
 *   decodes on its own and no chunk boundary can split a character.
 * - `data:` with or without one leading space; multiple data lines join with "\n"; a blank line
 *   dispatches the event; lines starting with ":" are comments.
 * - Bounded: a line longer than `maxLineBytes`, or an event whose data lines add up to more, throws
 *   SseLimitError (the upstream is broken or hostile; the proxy cuts the stream, unsigned). A line
 *   that arrives in many pieces is kept as a list of pieces and joined once when it ends, so
 *   assembling it costs time linear in its length, not quadratic.
 */
export interface SseEvent {
  /** The event's data (data lines joined with "\n"); undefined when the event had no data line. */
  data: string | undefined;
  event: string | undefined;
}

export class SseLimitError extends RangeError {
  override readonly name = 'SseLimitError';
}

const CR = 0x0d;
const LF = 0x0a;
const decoder = new TextDecoder();

export class SseParser {
  /** The pieces of a line not yet ended, and their total length. */
  private carry: Uint8Array[] = [];
  private carryBytes = 0;
  private eventBytes = 0;
  private pendingCr = false;
  private dataLines: string[] = [];
  private hasData = false;
  private eventName: string | undefined;
  /** Longest line we accept; an upstream that never sends a newline must not grow memory forever. */
  constructor(private readonly maxLineBytes = 16 * 1024 * 1024) {}

  /** Feeds bytes; returns the events completed by them, in order. */
  push(chunk: Uint8Array): SseEvent[] {
    const events: SseEvent[] = [];
    // An empty chunk must not touch the pending-CR state: the LF that completes a CRLF may come next.
    if (chunk.length === 0) return events;
    let start = 0;
    let i = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk.length > 0 && chunk[0] === LF) {
        start = 1;
        i = 1;
      }
    }
    // Line ends are found with indexOf (native, vectorised) instead of a JS loop over every byte: on
    // a stream of small events that loop was the proxy's largest cost. Each search position is kept
    // until passed, so a chunk is scanned at most once per terminator kind (no CR: one failed scan).
    let nextLf = chunk.indexOf(LF, i);
    let nextCr = chunk.indexOf(CR, i);
    while (nextLf !== -1 || nextCr !== -1) {
      i = nextCr === -1 || (nextLf !== -1 && nextLf < nextCr) ? nextLf : nextCr;
      const b = chunk[i];
      this.line(this.takeLine(chunk.subarray(start, i)), events);
      if (b === CR) {
        if (i + 1 < chunk.length) {
          if (chunk[i + 1] === LF) i++;
        } else {
          this.pendingCr = true;
        }
      }
      start = i + 1;
      if (nextLf !== -1 && nextLf < start) nextLf = chunk.indexOf(LF, start);
      if (nextCr !== -1 && nextCr < start) nextCr = chunk.indexOf(CR, start);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.carryBytes += rest.length;
      if (this.carryBytes > this.maxLineBytes) throw new SseLimitError('SSE line exceeds the maximum length');
      // A copy: the caller may reuse the chunk's memory once push returns.
      this.carry.push(Uint8Array.from(rest));
    }
    return events;
  }

  /** Bytes held for a line not yet ended (bounded by maxLineBytes). */
  get pendingBytes(): number {
    return this.carryBytes + this.eventBytes;
  }

  private takeLine(tail: Uint8Array): string {
    if (this.carry.length === 0) return decoder.decode(tail);
    if (this.carryBytes + tail.length > this.maxLineBytes) {
      throw new SseLimitError('SSE line exceeds the maximum length');
    }
    this.carry.push(tail);
    const whole = Buffer.concat(this.carry, this.carryBytes + tail.length);
    this.carry = [];
    this.carryBytes = 0;
    return decoder.decode(whole);
  }

  private line(line: string, events: SseEvent[]): void {
    if (line.length === 0) {
      if (this.hasData || this.eventName !== undefined) {
        events.push({ data: this.hasData ? this.dataLines.join('\n') : undefined, event: this.eventName });
      }
      this.dataLines = [];
      this.hasData = false;
      this.eventName = undefined;
      this.eventBytes = 0;
      return;
    }
    if (line.charCodeAt(0) === 0x3a) return; // ':' comment
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    if (field === 'data') {
      // An event of many short data lines and no blank line must not grow without bound either.
      this.eventBytes += value.length + 1;
      if (this.eventBytes > this.maxLineBytes)
        throw new SseLimitError('SSE event exceeds the maximum length');
      this.dataLines.push(value);
      this.hasData = true;
    } else if (field === 'event') {
      this.eventName = value;
    }
  }
}
