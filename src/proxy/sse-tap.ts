import { createHash, type Hash } from 'node:crypto';
import { idOf } from './response-id.js';
import { type SseEvent, SseLimitError, SseParser } from './sse-parser.js';

const encoder = new TextEncoder();

export interface SseOutcome {
  /**
   * Upstream ended, `[DONE]` was the last event, and no in-band error came (neither an `error` event
   * nor a data event whose JSON carries an error).
   */
  complete: boolean;
  /** sha256 hex of every byte returned by `push`/`confirm`/`end` (i.e. everything sent to the client). */
  responseHash: string;
  /** True when the tap rewrote the events to carry the id it was given. */
  rewritten: boolean;
}

export interface SseTapLimits {
  /** Longest line, and longest event (its data lines together). */
  maxLineBytes?: number;
  /** Most bytes held before the first data event decides the id. */
  maxHeldBytes?: number;
}

const DEFAULT_MAX_HELD_BYTES = 1024 * 1024;

/**
 * Sits on an SSE response: hashes exactly the bytes it hands back for sending, finds the id the
 * upstream gave in the first data event, notices `[DONE]` and in-band errors.
 *
 * Until the first data event is complete the tap holds the bytes (bounded): the caller must first
 * claim an id, send the `ZG-Res-Key` header, and then `confirm` the id it claimed. When that is the
 * upstream's own id, everything passes through unchanged. Otherwise (the upstream gave none, or its id
 * is taken) the tap rewrites: each event is re-emitted as `data: <json with the id>\n\n` (comments
 * and unknown fields dropped), because the id must appear in every chunk (docs/protocol.md).
 *
 * Errors are decided on parsed JSON, never on byte patterns: a data event is parsed whenever its text
 * could hold an `error` key (it contains `error` literally, or any backslash escape, which is the
 * only other way JSON can spell that key); one that then fails to parse counts as an error too.
 */
export class SseTap {
  private readonly parser: SseParser;
  private readonly maxHeldBytes: number;
  private readonly hash: Hash = createHash('sha256');
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  private heldEvents: SseEvent[] = [];
  private mode: 'undecided' | 'proposed' | 'pass' | 'rewrite' = 'undecided';
  private candidate: string | undefined;
  /** The first data event cannot carry an id (`[DONE]`, or none at all): nothing to rewrite. */
  private idless = false;
  private id: string | undefined;
  private done = false;
  private errored = false;
  private trailing = false;

  constructor(limits: SseTapLimits = {}) {
    this.parser = new SseParser(limits.maxLineBytes);
    this.maxHeldBytes = limits.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES;
  }

  /** An id is proposed (or none can be found): the caller claims one and calls `confirm`. */
  get proposed(): boolean {
    return this.mode === 'proposed';
  }

  /** The upstream's own id, once proposed; undefined when it gave none. */
  get upstreamId(): string | undefined {
    return this.candidate;
  }

  /** Feeds upstream bytes; returns the bytes to send now (none while the id is not confirmed). */
  push(chunk: Uint8Array): Uint8Array[] {
    const events = this.parser.push(chunk);
    if (this.mode === 'pass') {
      this.observe(events);
      return this.emit([chunk]);
    }
    if (this.mode === 'rewrite') return this.emit(this.rewrite(events));
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    this.heldEvents.push(...events);
    if (this.mode === 'undecided') this.propose();
    if (this.heldBytes > this.maxHeldBytes) {
      throw new SseLimitError('SSE stream sent too much before its first event');
    }
    return [];
  }

  /**
   * Sets the id the client will see (the upstream's own, or a fresh one when it gave none or its id
   * was taken) and returns the held bytes to send, as they came or rewritten to carry that id.
   */
  confirm(id: string): Uint8Array[] {
    if (this.mode !== 'proposed') throw new Error('SseTap.confirm before an id was proposed');
    this.id = id;
    const events = this.heldEvents;
    const held = this.held;
    this.held = [];
    this.heldEvents = [];
    this.heldBytes = 0;
    if (id === this.candidate || this.idless) {
      this.mode = 'pass';
      this.observe(events);
      return this.emit(held);
    }
    this.mode = 'rewrite';
    return this.emit(this.rewrite(events));
  }

  /**
   * Upstream ended cleanly: proposes when no data event ever came (the caller then confirms an id),
   * and returns the outcome. `complete` is false when `[DONE]` never came, something followed it, a
   * line was left unterminated, or an error came.
   */
  end(): SseOutcome {
    if (this.mode === 'proposed' || this.mode === 'undecided') {
      throw new Error('SseTap.end before the id was confirmed');
    }
    return {
      complete: this.done && !this.errored && !this.trailing && this.parser.pendingBytes === 0,
      responseHash: this.hash.digest('hex'),
      rewritten: this.mode === 'rewrite',
    };
  }

  /** The upstream ended before any data event: propose "no id" so the caller can confirm one. */
  endOfInput(): void {
    if (this.mode !== 'undecided') return;
    this.idless = true;
    this.mode = 'proposed';
  }

  private propose(): void {
    for (const ev of this.heldEvents) {
      if (ev.data === undefined) continue;
      if (ev.data === '[DONE]') {
        this.idless = true;
      } else {
        this.candidate = idOf(safeParse(ev.data));
      }
      this.mode = 'proposed';
      return;
    }
  }

  private emit(parts: Uint8Array[]): Uint8Array[] {
    for (const part of parts) this.hash.update(part);
    return parts;
  }

  private observe(events: SseEvent[]): void {
    for (const ev of events) {
      if (this.done) {
        // `[DONE]` must be the last event: anything after it makes the stream incomplete.
        this.trailing = true;
        return;
      }
      if (ev.event === 'error') this.errored = true;
      const data = ev.data;
      if (data === undefined) continue;
      if (data === '[DONE]') {
        this.done = true;
      } else if ((data.includes('error') || data.includes('\\')) && carriesError(data)) {
        this.errored = true;
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

/**
 * An OpenAI-style in-band error: a top-level `error` that is not null (OpenAI, newer vLLM) or
 * `"object": "error"` (older vLLM). Text that could spell one but does not parse counts as one.
 */
const carriesError = (data: string): boolean => {
  const parsed = safeParse(data);
  if (parsed === undefined) return true;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return false;
  const record = parsed as Record<string, unknown>;
  return (Object.hasOwn(record, 'error') && record.error !== null) || record.object === 'error';
};

const safeParse = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};
