import { sha384 } from '@noble/hashes/sha2.js';
import { z } from 'zod';

/**
 * The Dstack event log and RTMR replay, as a pure library (no I/O, no server imports) so the verifier
 * can use it unchanged.
 *
 * Facts (docs/platforms.md, "Dstack event log"; Dstack `cc-eventlog`):
 * - GetQuote's `event_log` is a JSON string holding a list of
 *   `{imr, event_type, digest, event, event_payload}`; `digest` and `event_payload` are hex.
 * - Boot events (RTMR0–2, TCG event types) carry the digest that was extended; it cannot be recomputed
 *   from the log because the measured data is not in it.
 * - Dstack's own runtime events (RTMR3, event type 0x08000001) are recomputable:
 *   `digest = sha384(u32le(event_type) ‖ ":" ‖ event ‖ ":" ‖ payload bytes)`. Newer guest agents send
 *   them with an empty digest (the "lite" log); a verifier recomputes them either way and must not
 *   trust a digest it was handed.
 * - Each RTMR starts as 48 zero bytes and is extended as `mr = sha384(mr ‖ digest)`.
 */

/** Event type of Dstack runtime events (app-id, compose-hash, instance-id, key-provider, …). */
export const DSTACK_RUNTIME_EVENT_TYPE = 0x08000001;

/** RTMRs and their digests are SHA-384 (TDX module spec, RTMR extend). */
export const RTMR_BYTES = 48;

/** One event as Dstack serializes it. Unknown keys are kept so a report can pass the log through. */
export interface DstackEvent {
  imr: number;
  event_type: number;
  /** Hex, 48 bytes; may be empty for runtime events. */
  digest: string;
  event: string;
  /** Hex. */
  event_payload: string;
  [key: string]: unknown;
}

export class EventLogError extends Error {
  override readonly name = 'EventLogError';
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/;

const eventSchema = z.looseObject({
  imr: z.number().int().min(0).max(3),
  event_type: z.number().int().min(0).max(0xffffffff),
  digest: z.string().regex(HEX, 'expected even-length hex'),
  event: z.string(),
  event_payload: z.string().regex(HEX, 'expected even-length hex'),
});
const logSchema = z.array(eventSchema).max(100_000);

const encoder = new TextEncoder();

const hexBytes = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, 'hex'));

/**
 * Parses and validates an event log given either as Dstack's JSON string or as an already parsed
 * list. Throws EventLogError naming the first bad entry (never echoing payloads).
 */
export const parseEventLog = (input: unknown): DstackEvent[] => {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch {
      throw new EventLogError(`event log is not valid JSON (${input.length} characters)`);
    }
  }
  const parsed = logSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined ? '' : ` at ${issue.path.join('.')}: ${issue.message}`;
    throw new EventLogError(`event log is malformed${where}`);
  }
  return parsed.data as DstackEvent[];
};

/** `sha384(u32le(event_type) ‖ ":" ‖ name ‖ ":" ‖ payload)`, Dstack's runtime event digest. */
export const runtimeEventDigest = (eventType: number, name: string, payload: Uint8Array): Uint8Array => {
  const type = new Uint8Array(4);
  new DataView(type.buffer).setUint32(0, eventType, true);
  const colon = encoder.encode(':');
  const hash = sha384.create();
  hash.update(type).update(colon).update(encoder.encode(name)).update(colon).update(payload);
  return hash.digest();
};

/**
 * The digest to replay for one event: recomputed for runtime events (and checked against the given
 * digest when one is present), taken as given for boot events.
 */
export const eventDigest = (event: DstackEvent, index = 0): Uint8Array => {
  if (event.event_type === DSTACK_RUNTIME_EVENT_TYPE) {
    const computed = runtimeEventDigest(event.event_type, event.event, hexBytes(event.event_payload));
    if (event.digest !== '' && Buffer.compare(Buffer.from(event.digest, 'hex'), computed) !== 0) {
      throw new EventLogError(`event ${index} ("${event.event}"): digest does not match its content`);
    }
    return computed;
  }
  if (event.digest.length !== RTMR_BYTES * 2) {
    throw new EventLogError(
      `event ${index}: digest expected ${RTMR_BYTES} bytes, got length=${event.digest.length / 2}`,
    );
  }
  return hexBytes(event.digest);
};

/** Replays one register: `mr = sha384(mr ‖ digest)` from 48 zero bytes. */
export const replayRtmr = (digests: readonly Uint8Array[]): Uint8Array => {
  let mr: Uint8Array = new Uint8Array(RTMR_BYTES);
  for (const digest of digests) {
    const hash = sha384.create();
    hash.update(mr).update(digest);
    mr = hash.digest();
  }
  return mr;
};

/** Replays RTMR0–3 from the log. Index i of the result is RTMR i. */
export const replayRtmrs = (
  events: readonly DstackEvent[],
): [Uint8Array, Uint8Array, Uint8Array, Uint8Array] => {
  const digests: [Uint8Array[], Uint8Array[], Uint8Array[], Uint8Array[]] = [[], [], [], []];
  events.forEach((event, index) => {
    const list = digests[event.imr as 0 | 1 | 2 | 3];
    if (list === undefined) throw new EventLogError(`event ${index}: imr ${event.imr} is not 0-3`);
    list.push(eventDigest(event, index));
  });
  return [replayRtmr(digests[0]), replayRtmr(digests[1]), replayRtmr(digests[2]), replayRtmr(digests[3])];
};

/**
 * The RTMR3 runtime event with this name, or undefined. A name that occurs twice is refused: the app
 * can extend RTMR3 itself after boot, so a second `compose-hash` must never be able to shadow the one
 * the OS measured.
 */
export const findRuntimeEvent = (events: readonly DstackEvent[], name: string): DstackEvent | undefined => {
  const matches = events.filter(
    (e) => e.imr === 3 && e.event_type === DSTACK_RUNTIME_EVENT_TYPE && e.event === name,
  );
  if (matches.length > 1) throw new EventLogError(`runtime event "${name}" occurs ${matches.length} times`);
  return matches[0];
};

/** What RTMR3 says about the app. Hex fields are lowercase hex of the payload bytes. */
export interface DstackIdentity {
  /** 20-byte app id (hex). */
  appId?: string;
  /** sha256 of app-compose.json (hex, 32 bytes). */
  composeHash?: string;
  instanceId?: string;
  /** sha256 of the OS image (hex), recorded by dstack ≥ 0.5. */
  osImageHash?: string;
  /** The key provider record, decoded from its UTF-8 JSON payload (e.g. `{"name":"kms","id":"…"}`). */
  keyProvider?: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Extracts the identity events from a log (after parseEventLog; replay it against the quote first). */
export const dstackIdentity = (events: readonly DstackEvent[]): DstackIdentity => {
  const identity: DstackIdentity = {};
  const hexField = (name: string): string | undefined =>
    findRuntimeEvent(events, name)?.event_payload.toLowerCase();
  const appId = hexField('app-id');
  if (appId !== undefined) identity.appId = appId;
  const composeHash = hexField('compose-hash');
  if (composeHash !== undefined) {
    if (composeHash.length !== 64) {
      throw new EventLogError(`compose-hash payload expected 32 bytes, got length=${composeHash.length / 2}`);
    }
    identity.composeHash = composeHash;
  }
  const instanceId = hexField('instance-id');
  if (instanceId !== undefined) identity.instanceId = instanceId;
  const osImageHash = hexField('os-image-hash');
  if (osImageHash !== undefined) identity.osImageHash = osImageHash;
  const keyProvider = hexField('key-provider');
  if (keyProvider !== undefined) {
    try {
      identity.keyProvider = decoder.decode(hexBytes(keyProvider));
    } catch {
      throw new EventLogError('key-provider payload is not UTF-8');
    }
  }
  return identity;
};
