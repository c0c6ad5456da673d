/**
 * Splits an SSE byte stream into whole events, keeping each event's exact bytes (WHATWG HTML,
 * "Server-sent events": lines end in CRLF, LF or CR; an empty line dispatches the event). The
 * gateway forwards events whole so it can hold back the final `data: [DONE]` until the stream's
 * signature verified.
 */
export class SseEventSplitter {
  private pending: Uint8Array[] = [];
  private pendingLength = 0;
  /** At the start of a line (nothing since the last line end). */
  private atLineStart = true;
  /** The previous byte was a CR. */
  private afterCr = false;
  /** That CR was a blank line: the event ends with it, or with it and a following LF. */
  private crEndsEvent = false;

  /** Feeds bytes; returns the events they complete, each as its exact bytes including the blank line. */
  push(chunk: Uint8Array): Uint8Array[] {
    const events: Uint8Array[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (this.afterCr) {
        this.afterCr = false;
        if (b === 0x0a) {
          // The LF of a CRLF: the line end was counted at the CR.
          if (this.crEndsEvent) {
            this.crEndsEvent = false;
            events.push(this.take(chunk, start, i + 1));
            start = i + 1;
          }
          continue;
        }
        if (this.crEndsEvent) {
          // A lone CR was the blank line: the event ended before this byte.
          this.crEndsEvent = false;
          events.push(this.take(chunk, start, i));
          start = i;
        }
      }
      if (b === 0x0d) {
        this.afterCr = true;
        if (this.atLineStart) this.crEndsEvent = true;
        this.atLineStart = true;
      } else if (b === 0x0a) {
        if (this.atLineStart) {
          events.push(this.take(chunk, start, i + 1));
          start = i + 1;
        }
        this.atLineStart = true;
      } else {
        this.atLineStart = false;
      }
    }
    if (start < chunk.length) {
      this.pending.push(chunk.slice(start));
      this.pendingLength += chunk.length - start;
    }
    return events;
  }

  /** At the end of the stream: an event ended by a lone final CR, if any (else nothing). */
  finish(): Uint8Array[] {
    if (this.crEndsEvent) {
      this.crEndsEvent = false;
      return [this.take(new Uint8Array(0), 0, 0)];
    }
    return [];
  }

  /** Bytes received after the last complete event (a stream cut mid-event). */
  get rest(): number {
    return this.pendingLength;
  }

  private take(chunk: Uint8Array, start: number, end: number): Uint8Array {
    const part = chunk.subarray(start, end);
    if (this.pending.length === 0) return part.slice();
    const out = new Uint8Array(this.pendingLength + part.length);
    let at = 0;
    for (const p of this.pending) {
      out.set(p, at);
      at += p.length;
    }
    out.set(part, at);
    this.pending = [];
    this.pendingLength = 0;
    return out;
  }
}

/** The `data` field of one event (data lines joined by LF, as the SSE spec assembles it). */
export const eventData = (event: Uint8Array): string | undefined => {
  const lines = new TextDecoder().decode(event).split(/\r\n|\r|\n/);
  const data: string[] = [];
  for (const line of lines) {
    if (line === 'data') data.push('');
    else if (line.startsWith('data:')) data.push(line.slice(line[5] === ' ' ? 6 : 5));
  }
  return data.length === 0 ? undefined : data.join('\n');
};

/**
 * Why one event is not a well-formed event of an OpenAI chat stream, or undefined when it is. The
 * stream is `data: <JSON object>` events ended by exactly `data: [DONE]` (docs/protocol.md,
 * "Signed text", Streams); comment lines (`:`) are allowed. Anything else — other fields (`event:`, `id:`,
 * `retry:`), a data line that starts with `[DONE]` but is not exactly `[DONE]`, data that is not a
 * JSON object, any event after `[DONE]` — would be read differently by the user's SSE parser than by
 * the gateway (issue 21 item 1: `data: [DONE]x` ends the openai SDK's stream normally), so it ends
 * the stream before it is forwarded.
 */
export const framingError = (event: Uint8Array, afterDone: boolean): string | undefined => {
  if (afterDone) return 'an event after data: [DONE]';
  const lines = new TextDecoder().decode(event).split(/\r\n|\r|\n/);
  for (const line of lines) {
    if (line === '' || line.startsWith(':') || line === 'data' || line.startsWith('data:')) continue;
    return 'a line that is neither data nor a comment';
  }
  const data = eventData(event);
  if (data === undefined || data === '[DONE]') return undefined;
  if (data.startsWith('[DONE]')) return 'a data line that starts with [DONE] but is not exactly [DONE]';
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return 'data that is not JSON';
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? undefined
    : 'data that is not a JSON object';
};
