import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { DSTACK_KEY_PURPOSE, DstackKeySource } from '../../src/keys/dstack.js';
import { type FakeAgent, sendJson, startFakeAgent } from './agent-server.js';

let agent: FakeAgent | undefined;
afterEach(async () => {
  await agent?.close();
  agent = undefined;
});

/** A stand-in KMS: deterministic per path, like dstack's (sha256 of the path here). */
const kmsKey = (path: string): string => createHash('sha256').update(path).digest('hex');

describe('DstackKeySource', () => {
  it('derives secp256k1 from <path> and the Ed25519 seed from <path>/ed25519, purpose "signing"', async () => {
    agent = await startFakeAgent((req, res) => {
      const { path } = JSON.parse(req.body.toString()) as { path: string };
      sendJson(res, { key: kmsKey(path), signature_chain: [] });
    });
    const source = new DstackKeySource({ socketPath: agent.socketPath, path: 'teeml-sidecar/signing' });
    expect(source.kind).toBe('dstack');
    const keys = await source.load();
    expect(Buffer.from(keys.secp256k1).toString('hex')).toBe(kmsKey('teeml-sidecar/signing'));
    expect(Buffer.from(keys.ed25519).toString('hex')).toBe(kmsKey('teeml-sidecar/signing/ed25519'));
    expect(agent.requests.map((r) => JSON.parse(r.body.toString()))).toEqual([
      { path: 'teeml-sidecar/signing', purpose: DSTACK_KEY_PURPOSE },
      { path: 'teeml-sidecar/signing/ed25519', purpose: DSTACK_KEY_PURPOSE },
    ]);
    expect(DSTACK_KEY_PURPOSE).toBe('signing');
  });

  it('gives the same keys on every load (stable address across restarts)', async () => {
    agent = await startFakeAgent((req, res) =>
      sendJson(res, { key: kmsKey(req.body.toString()), signature_chain: [] }),
    );
    const a = await new DstackKeySource({ socketPath: agent.socketPath, path: 'p' }).load();
    const b = await new DstackKeySource({ socketPath: agent.socketPath, path: 'p' }).load();
    expect(a).toEqual(b);
  });

  for (const [label, key] of [
    ['zero', '00'.repeat(32)],
    ['at or above the group order', 'ff'.repeat(32)],
  ] as const) {
    it(`rejects a secp256k1 key that is ${label}`, async () => {
      agent = await startFakeAgent((_req, res) => sendJson(res, { key, signature_chain: [] }));
      const source = new DstackKeySource({ socketPath: agent.socketPath, path: 'p' });
      await expect(source.load()).rejects.toMatchObject({
        status: 503,
        code: 'dstack_bad_key',
        message: 'dstack GetKey failed: key is not a valid secp256k1 scalar',
      });
      expect(agent.requests).toHaveLength(1);
    });
  }

  it('rejects a key of the wrong length', async () => {
    agent = await startFakeAgent((_req, res) => sendJson(res, { key: '01'.repeat(33), signature_chain: [] }));
    await expect(
      new DstackKeySource({ socketPath: agent.socketPath, path: 'p' }).load(),
    ).rejects.toMatchObject({
      code: 'dstack_bad_key',
    });
  });

  it('an unreachable agent is 503', async () => {
    await expect(
      new DstackKeySource({ socketPath: '/nonexistent/dstack.sock', path: 'p' }).load(),
    ).rejects.toMatchObject({ status: 503, code: 'dstack_unavailable' });
  });
});
