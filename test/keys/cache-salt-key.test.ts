import { createHmac, hkdfSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CACHE_SALT_HKDF_INFO, CACHE_SALT_HKDF_SALT, createCacheSalter } from '../../src/keys/index.js';

/**
 * The cache-salt key (docs/protocol.md, Cache salt): HKDF-SHA256 of the signing key, then HMAC-SHA-256
 * of the caller's identity, recomputed here with Node's own HKDF and HMAC as an independent check.
 */
const key = new Uint8Array(32).fill(7);

describe('createCacheSalter', () => {
  it('is HMAC-SHA-256(HKDF-SHA256(signing key, fixed salt and info), identity)', () => {
    const derived = Buffer.from(hkdfSync('sha256', key, CACHE_SALT_HKDF_SALT, CACHE_SALT_HKDF_INFO, 32));
    const expected = createHmac('sha256', derived).update('bearer:token-a').digest('hex');
    expect(createCacheSalter(key)('bearer:token-a')).toBe(expected);
  });

  it('is stable for one signing key, and differs across identities and across keys', () => {
    const salter = createCacheSalter(key);
    expect(createCacheSalter(Uint8Array.from(key))('bearer:a')).toBe(salter('bearer:a'));
    expect(salter('bearer:a')).not.toBe(salter('bearer:b'));
    expect(createCacheSalter(new Uint8Array(32).fill(8))('bearer:a')).not.toBe(salter('bearer:a'));
    expect(salter('bearer:a')).toMatch(/^[0-9a-f]{64}$/);
  });
});
