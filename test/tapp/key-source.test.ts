import { hkdfSync } from 'node:crypto';
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { afterEach, describe, expect, it } from 'vitest';
import { addressOfPublicKey } from '../../src/keys/eip191.js';
import {
  deriveTappEd25519Seed,
  TAPP_ED25519_HKDF_INFO,
  TAPP_ED25519_HKDF_SALT,
  TappKeySource,
} from '../../src/keys/tapp.js';
import { type FakeTapp, startFakeTapp } from './tapp-server.js';

const KEY = Buffer.from('4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318', 'hex');
const ADDRESS = Buffer.from(addressOfPublicKey(secp256k1.getPublicKey(KEY, false)));

type Call = ServerUnaryCall<{ app_id: string; key_type: string; x25519: boolean }, unknown>;

let tapp: FakeTapp | undefined;
afterEach(async () => {
  await tapp?.close();
  tapp = undefined;
});

const serveKey = async (reply: (call: Call) => object, seen: Call['request'][] = []) => {
  tapp = await startFakeTapp({
    GetAppSecretKey: (call: Call, cb: sendUnaryData<unknown>) => {
      seen.push(call.request);
      cb(null, reply(call));
    },
  });
  return new TappKeySource({ endpoint: tapp.endpoint, appId: 'teeml-app', timeoutMs: 5000 });
};

describe('TappKeySource against a real gRPC server', () => {
  it('takes the ethereum key and derives the Ed25519 seed with HKDF-SHA256', async () => {
    const seen: Call['request'][] = [];
    const source = await serveKey(() => ({ success: true, private_key: KEY, eth_address: ADDRESS }), seen);
    expect(source.kind).toBe('tapp');
    const keys = await source.load();
    expect(Buffer.from(keys.secp256k1)).toEqual(KEY);
    const expected = Buffer.from(hkdfSync('sha256', KEY, TAPP_ED25519_HKDF_SALT, TAPP_ED25519_HKDF_INFO, 32));
    expect(Buffer.from(keys.ed25519)).toEqual(expected);
    expect(Buffer.from(deriveTappEd25519Seed(KEY))).toEqual(expected);
    expect(seen).toEqual([{ app_id: 'teeml-app', key_type: 'ethereum', x25519: false }]);
  });

  it('loads the same keys again (one channel per load, closed after)', async () => {
    const seen: Call['request'][] = [];
    const source = await serveKey(() => ({ success: true, private_key: KEY, eth_address: ADDRESS }), seen);
    const a = await source.load();
    const b = await source.load();
    expect(a).toEqual(b);
    expect(seen).toHaveLength(2);
  });

  it('pins the HKDF parameters (changing them changes every Ed25519 identity)', () => {
    expect([TAPP_ED25519_HKDF_SALT, TAPP_ED25519_HKDF_INFO]).toEqual([
      'teeml-sidecar',
      'teeml-sidecar/tapp/ed25519-seed/v1',
    ]);
  });

  it('rejects a key that does not match the reported address', async () => {
    const source = await serveKey(() => ({
      success: true,
      private_key: KEY,
      eth_address: Buffer.alloc(20, 1),
    }));
    await expect(source.load()).rejects.toMatchObject({
      status: 503,
      code: 'tapp_bad_key',
      message: 'tapp GetAppSecretKey failed: key does not match the address Tapp reported',
    });
  });

  it('rejects a key of the wrong length or out of range, without echoing it', async () => {
    const source = await serveKey((call) =>
      call.request.app_id === 'teeml-app' ? { success: true, private_key: Buffer.alloc(31, 0xee) } : {},
    );
    const error = (await source.load().catch((e: unknown) => e)) as Error;
    expect(error).toMatchObject({
      code: 'tapp_bad_key',
      message: 'tapp GetAppSecretKey failed: key expected 32 bytes, got length=31',
    });
    expect(error.message).not.toContain('eeee');
    await tapp?.close();
    const zero = await serveKey(() => ({ success: true, private_key: Buffer.alloc(32) }));
    await expect(zero.load()).rejects.toMatchObject({
      message: 'tapp GetAppSecretKey failed: key is not a valid secp256k1 scalar',
    });
  });

  it('a reported failure is 503 without the service message', async () => {
    const source = await serveKey(() => ({ success: false, message: 'permission denied for 0xabc' }));
    await expect(source.load()).rejects.toMatchObject({
      status: 503,
      code: 'tapp_error',
      message: 'tapp GetAppSecretKey failed: the service reported failure',
    });
  });
});
