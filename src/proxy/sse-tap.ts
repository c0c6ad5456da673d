import { createHash, type Hash } from 'node:crypto';
import { generateResponseId, idOf } from './response-id.js';
import { type SseEvent, SseParser } from './sse-parser.js';

const encoder = new TextEncoder();

export interface SseOutcome {
  /** Upstream ended, `[DONE]` was seen and no in-band error event came. */
  complete: boolean;
  id: string;
  /** sha256 hex of every byte returned by `push` (i.e. everything sent to the client). */
  responseHash: string;
  /** True when the upstream gave no id and the tap wrote one into every event. */
  injected: boolean;
}

/**
 * Sits on an SSE response: hashes exactly the bytes it hands back for sending, finds the response id
 * in the first data event that has one, notices `[DONE]` and in-band `{"error": …}` events.
 *
 * Until the first data event is complete the tap holds the bytes (so the caller can still send the
 * `ZG-Res-Key` header). If that event carries an id, everything afterwards passes through unchanged.
 * If not, the tap switches to rewriting: each event is re-emitted as `data: <json with id>\n\n`
 * (comments and unknown fields dropped), because the id must appear in every chunk (CONTRACT.md).
 */
export class SseTap {
  private readonly parser: SseParser;
  private readonly hash: Hash = createHash('sha256');
  private held: Uint8Array[] = [];
  private mode: 'undecided' | 'pass' | 'rewrite' = 'undecided';
  private id: string | undefined;
  private done = false;
  private errored = false;
  private injected = false;

  constructor(
    private readonly newId: () => string = generateResponseId,
    maxLineBytes?: number,
  ) {
    this.parser = new SseParser(maxLineBytes);
  }

  /** Whether the id is known (headers can be sent). */
  get decided(): boolean {
    return this.mode !== 'undecided';
  }

  get responseId(): string | undefined {
    return this.id;
  }

  /** Feeds upstream bytes; returns the bytes to send now (possibly none while undecided). */
  push(chunk: Uint8Array): Uint8Array[] {
    const events = this.parser.push(chunk);
    if (this.mode === 'pass') {
      this.observe(events);
      return this.emit([chunk]);
    }
    if (this.mode === 'rewrite') return this.emit(this.rewrite(events));
    this.held.push(chunk);
    for (let i = 0; i < events.length; i++) {
      const ev = events[i] as SseEvent;
      if (ev.data === undefined) continue;
      const data = ev.data;
      if (data === '[DONE]') {
        // A stream with no content event: nothing to carry an id, so pass through under a fresh one.
        this.decide('pass', this.newId());
        this.observe(events.slice(i));
        break;
      }
      const found = idOf(safeParse(data));
      if (found !== undefined) {
        this.decide('pass', found);
        this.observe(events.slice(i));
        break;
      }
      this.decide('rewrite', this.newId());
      this.injected = true;
      const out = this.rewrite(events.slice(i));
      this.held = [];
      return this.emit(out);
    }
    // decide() may have switched the mode inside the loop; TypeScript cannot see through the call.
    if (!this.decided) return [];
    const out = this.held;
    this.held = [];
    return this.emit(out);
  }

  /**
   * Upstream ended cleanly. Returns the bytes still to send (held ones, when no data event ever came)
   * and the outcome. `complete` is false when `[DONE]` never came or an error event did.
   */
  end(): { rest: Uint8Array[]; outcome: SseOutcome } {
    let rest: Uint8Array[] = [];
    if (this.mode === 'undecided') {
      this.decide('pass', this.newId());
      rest = this.emit(this.held);
      this.held = [];
    }
    return {
      rest,
      outcome: {
        complete: this.done && !this.errored,
        id: this.id as string,
        responseHash: this.hash.digest('hex'),
        injected: this.injected,
      },
    };
  }

  private decide(mode: 'pass' | 'rewrite', id: string): void {
    this.mode = mode;
    this.id = id;
  }

  private emit(parts: Uint8Array[]): Uint8Array[] {
    for (const part of parts) this.hash.update(part);
    return parts;
  }

  private observe(events: SseEvent[]): void {
    for (const ev of events) {
      const data = ev.data;
      if (data === undefined || this.done) continue;
      if (data === '[DONE]') {
        this.done = true;
      } else if (data.includes('"error"')) {
        const parsed = safeParse(data);
        if (typeof parsed === 'object' && parsed !== null && 'error' in parsed) this.errored = true;
      }
    }
  }

  private rewrite(events: SseEvent[]): Uint8Array[] {
    this.observe(events);
    const out: Uint8Array[] = [];
    for (const ev of events) {
      if (ev.data === undefined) continue;
      let data = ev.data;
      const parsed = safeParse(data);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        const { id: _dropped, ...rest } = parsed as Record<string, unknown>;
        data = JSON.stringify({ id: this.id, ...rest });
      }
      const prefix = ev.event === undefined ? '' : `event: ${ev.event}\n`;
      out.push(encoder.encode(`${prefix}data: ${data}\n\n`));
    }
    return out;
  }
}

const safeParse = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};
