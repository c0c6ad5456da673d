import type { IncomingHttpHeaders } from 'node:http';
import type { CacheSalter } from '../keys/index.js';

/**
 * Per-user prefix-cache partitions (docs/protocol.md, Cache salt). vLLM reuses the KV cache of any
 * earlier request with the same prefix, so the time to the first token tells a caller whether someone
 * sent that prefix before; vLLM's `cache_salt` request field keeps requests with different salts from
 * sharing cached blocks. The sidecar sets it (CACHE_SALT=per-user) to HMAC-SHA-256 of the caller's
 * identity under a key held only in the TEE (keys/cache-salt-key.ts), replacing any salt the client
 * sent: a client cannot pick another user's partition, and the model server never sees the identity.
 */

/** The endpoints whose vLLM request models take `cache_salt`; other bodies are forwarded as sent. */
export const SALTED_PATHS: ReadonlySet<string> = new Set(['/chat/completions', '/completions', '/responses']);

const ZG_ADDRESS = /^0x[0-9a-fA-F]{40}$/;

const first = (value: string | string[] | undefined): string | undefined =>
  Array.isArray(value) ? value[0] : value;

/**
 * Who is asking, as a string only ever fed to the HMAC (never logged): the 0G user address when the
 * request carries 0G's `Address` metadata, else the bearer token, else one shared anonymous partition.
 * Each kind has its own prefix so a token can never equal an address.
 */
export const callerIdentity = (headers: IncomingHttpHeaders): string => {
  const address = first(headers['address'])?.trim();
  if (address !== undefined && ZG_ADDRESS.test(address)) return `0g:${address.toLowerCase()}`;
  const authorization = first(headers.authorization);
  if (authorization?.startsWith('Bearer ')) {
    const token = authorization.slice(7).trim();
    if (token !== '') return `bearer:${token}`;
  }
  return 'anonymous';
};

const encoder = new TextEncoder();
const CLOSE_BRACE = 0x7d;
const isSpace = (b: number | undefined): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/**
 * The body with `cache_salt` set to `salt`. When the client sent none, the field is spliced in before
 * the object's closing brace and every other byte stays as sent (no re-serialization: a 64-bit
 * `seed` survives, and key order is kept). A client's own `cache_salt` is replaced by serializing the
 * parsed object once.
 */
export const withCacheSalt = (body: Uint8Array, value: Record<string, unknown>, salt: string): Uint8Array => {
  if (Object.hasOwn(value, 'cache_salt')) {
    return encoder.encode(JSON.stringify({ ...value, cache_salt: salt }));
  }
  let end = body.length - 1;
  while (end >= 0 && isSpace(body[end])) end--;
  if (body[end] !== CLOSE_BRACE) return encoder.encode(JSON.stringify({ ...value, cache_salt: salt }));
  const field = encoder.encode(
    `${Object.keys(value).length > 0 ? ',' : ''}"cache_salt":${JSON.stringify(salt)}`,
  );
  const out = new Uint8Array(end + field.length + 1);
  out.set(body.subarray(0, end), 0);
  out.set(field, end);
  out[end + field.length] = CLOSE_BRACE;
  return out;
};

/** The salt for this caller. */
export const cacheSaltFor = (salter: CacheSalter, headers: IncomingHttpHeaders): string =>
  salter(callerIdentity(headers));
