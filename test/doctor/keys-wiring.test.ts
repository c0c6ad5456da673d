import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type CheckResult, runDoctor, targetTeeAddressesOf } from '../../src/doctor/index.js';
import { createSigners } from '../../src/keys/index.js';
import { type FakeAgent, sendJson, startFakeAgent } from '../dstack/agent-server.js';
import { SECRET_MARKERS } from '../secrets.js';
import { redisSkipReason } from '../signatures/redis-server.js';
import {
  baseDeps,
  byId,
  cleanupScratch,
  config,
  json,
  type Loopback,
  scratch,
  startLoopback,
} from './harness.js';

const kmsKey = (path: string): string => createHash('sha256').update(path).digest('hex');
/** The address the fake KMS gives for the default DSTACK_KEY_PATH. */
const KMS_ADDRESS = createSigners({
  secp256k1: Buffer.from(kmsKey('teeml-sidecar/signing'), 'hex'),
  ed25519: Buffer.from(kmsKey('teeml-sidecar/signing/ed25519'), 'hex'),
}).ecdsa.address;

let agent: FakeAgent | undefined;
let upstream: Loopback | undefined;
const servers: Server[] = [];
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  await upstream?.close();
  upstream = undefined;
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});
afterAll(cleanupScratch);

const pick = (results: CheckResult[], id: string) => byId(results, id);
const kms = async (unstable = false) => {
  let calls = 0;
  agent = await startFakeAgent((req, res) => {
    const { path } = JSON.parse(req.body.toString()) as { path: string };
    calls += 1;
    sendJson(res, { key: kmsKey(unstable && calls > 2 ? `${path}/other` : path), signature_chain: [] });
  });
  return agent.socketPath;
};

describe('doctor: keys', () => {
  it('ephemeral: shows the address and warns that 0G clients need a stable one', async () => {
    const r = pick(await runDoctor(config(), {}, baseDeps()), 'keys.source');
    expect(r).toMatchObject({
      status: 'warn',
      detail: expect.stringMatching(
        /^KEY_SOURCE=ephemeral: signing address 0x[0-9a-fA-F]{40}, ed25519 [0-9a-f]{64}; ephemeral: a new address at every start$/,
      ),
      hint: expect.stringContaining('targetTeeAddress'),
    });
  });

  it('dstack: derives twice through the guest agent and gets the same address', async () => {
    const socket = await kms();
    const r = pick(
      await runDoctor(config({ KEY_SOURCE: 'dstack', DSTACK_SOCKET: socket }), {}, baseDeps()),
      'keys.source',
    );
    expect(r).toEqual({
      id: 'keys.source',
      status: 'pass',
      detail: `KEY_SOURCE=dstack (path teeml-sidecar/signing): signing address ${KMS_ADDRESS}, ed25519 ${r.detail.match(/ed25519 ([0-9a-f]{64})/)?.[1]}; derived twice: same address (stable across restarts)`,
    });
    expect(agent?.requests.length).toBe(4);
  });

  it('a key source that gives another key the second time fails: every restart would break 0G clients', async () => {
    const socket = await kms(true);
    const r = pick(
      await runDoctor(config({ KEY_SOURCE: 'dstack', DSTACK_SOCKET: socket }), {}, baseDeps()),
      'keys.source',
    );
    expect(r).toMatchObject({ status: 'fail', detail: expect.stringContaining('NOT stable') });
  });

  it('dstack without the socket fails with the mount hint', async () => {
    const r = pick(await runDoctor(config({ KEY_SOURCE: 'dstack' }), {}, baseDeps()), 'keys.source');
    expect(r).toMatchObject({ status: 'fail', hint: expect.stringContaining('/var/run/dstack.sock') });
  });
});

describe('doctor: upstream', () => {
  it('no UPSTREAM_URL: the demo upstream would answer, a failure', async () => {
    const r = pick(await runDoctor(config(), {}, baseDeps()), 'wiring.upstream');
    expect(r).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('demo upstream'),
      hint: expect.stringContaining('UPSTREAM_URL'),
    });
  });

  it.each(['', '/v1', '/v1/'])(
    'GET /v1/models lists the model names (UPSTREAM_URL ending "%s"), with the API key sent',
    async (suffix) => {
      upstream = await startLoopback((_req, res) =>
        json(res, { object: 'list', data: [{ id: 'Qwen/Qwen2.5-7B-Instruct' }, { id: 'small' }] }),
      );
      const results = await runDoctor(
        config({ UPSTREAM_URL: `${upstream.url}${suffix}`, UPSTREAM_API_KEY: SECRET_MARKERS.upstreamKey }),
        {},
        baseDeps(),
      );
      expect(pick(results, 'wiring.upstream')).toMatchObject({
        status: 'pass',
        detail: `GET ${upstream.url}/v1/models: 2 models: Qwen/Qwen2.5-7B-Instruct, small`,
      });
      expect(upstream.requests[0]).toMatchObject({
        path: '/v1/models',
        headers: { authorization: `Bearer ${SECRET_MARKERS.upstreamKey}` },
      });
      expect(JSON.stringify(results)).not.toContain(SECRET_MARKERS.upstreamKey);
    },
  );

  it('401 from vLLM points at UPSTREAM_API_KEY', async () => {
    upstream = await startLoopback((_req, res) => json(res, { error: 'no' }, 401));
    const r = pick(
      await runDoctor(config({ UPSTREAM_URL: upstream.url }), {}, baseDeps()),
      'wiring.upstream',
    );
    expect(r).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('HTTP 401'),
      hint: expect.stringContaining('UPSTREAM_API_KEY'),
    });
  });

  it('an answer that is not a model list fails', async () => {
    upstream = await startLoopback((_req, res) => {
      res.end('<html>');
    });
    const r = pick(
      await runDoctor(config({ UPSTREAM_URL: upstream.url }), {}, baseDeps()),
      'wiring.upstream',
    );
    expect(r).toMatchObject({ status: 'fail', detail: expect.stringContaining('not an OpenAI model list') });
  });

  it('nothing listening: connection refused, without the URL credentials', async () => {
    upstream = await startLoopback(() => undefined);
    const url = upstream.url.replace('http://', 'http://user:pw-secret@');
    await upstream.close();
    upstream = undefined;
    const r = pick(await runDoctor(config({ UPSTREAM_URL: url }), {}, baseDeps()), 'wiring.upstream');
    expect(r).toMatchObject({ status: 'fail', detail: expect.stringContaining('ECONNREFUSED') });
    expect(JSON.stringify(r)).not.toContain('pw-secret');
  });

  it('a hung upstream costs one deadline', async () => {
    upstream = await startLoopback(() => undefined);
    const r = pick(
      await runDoctor(
        config({ UPSTREAM_URL: upstream.url }),
        {},
        baseDeps({ timeouts: { 'wiring.upstream': 100 } }),
      ),
      'wiring.upstream',
    );
    expect(r).toMatchObject({
      status: 'fail',
      detail: 'no answer within 100 ms',
      hint: expect.stringContaining('vLLM'),
    });
  });
});

describe('doctor: Redis', () => {
  it('not configured: skipped', async () => {
    expect(pick(await runDoctor(config(), {}, baseDeps()), 'wiring.redis')).toMatchObject({ status: 'skip' });
  });

  it.skipIf(redisSkipReason(false) !== undefined || process.env.REDIS_TEST_URL === undefined)(
    'REDIS_TEST_URL answers PING',
    async () => {
      const url = process.env.REDIS_TEST_URL as string;
      const r = pick(await runDoctor(config({ REDIS_URL: url }), {}, baseDeps()), 'wiring.redis');
      expect(r).toEqual({
        id: 'wiring.redis',
        status: 'pass',
        detail: `${new URL(url).protocol}//${new URL(url).host}: PING answered`,
      });
    },
  );

  it('an unreachable Redis fails within its deadline, and its password is never shown', async () => {
    const port = await closedPort();
    const r = pick(
      await runDoctor(
        config({ REDIS_URL: `redis://user:redis-pw-secret@127.0.0.1:${port}` }),
        {},
        baseDeps({ timeouts: { 'wiring.redis': 10_000 } }),
      ),
      'wiring.redis',
    );
    expect(r.status).toBe('fail');
    expect(r.detail).toMatch(new RegExp(`^redis://127\\.0\\.0\\.1:${port}: `));
    expect(JSON.stringify(r)).not.toContain('redis-pw-secret');
  });
});

describe('doctor: TLS certificate and key', () => {
  const openssl = (name: string, days: number) => {
    const cert = join(scratch, `${name}.crt`);
    const key = join(scratch, `${name}.key`);
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-subj',
        `/CN=${name}.doctor.test`,
        '-days',
        String(days),
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    return { cert, key };
  };
  const tls = async (cert: string | undefined, key: string | undefined) =>
    pick(
      await runDoctor(
        config(),
        { ...(cert ? { tlsCertPath: cert } : {}), ...(key ? { tlsKeyPath: key } : {}) },
        baseDeps({ now: () => new Date() }),
      ),
      'wiring.tls',
    );

  it('not configured: skipped; only one of the two: a failure', async () => {
    expect(await tls(undefined, undefined)).toMatchObject({ status: 'skip' });
    expect(await tls(join(scratch, 'x.crt'), undefined)).toMatchObject({ status: 'fail' });
  });

  it('a valid certificate matching its key passes, and no key bytes appear', async () => {
    const { cert, key } = openssl('good', 90);
    const r = await tls(cert, key);
    expect(r).toMatchObject({
      status: 'pass',
      detail: expect.stringMatching(
        /^certificate .*good\.crt \(CN=good\.doctor\.test, valid .* to .*\), matches the key$/,
      ),
    });
  });

  it('a certificate with another key fails; one close to expiry warns', async () => {
    const a = openssl('a', 90);
    const b = openssl('b', 90);
    expect(await tls(a.cert, b.key)).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('does not match the key'),
    });
    const soon = openssl('soon', 3);
    expect(await tls(soon.cert, soon.key)).toMatchObject({
      status: 'warn',
      detail: expect.stringContaining('expires within 14 days'),
    });
  });

  it('checks TLS_CERT_PATH + TLS_KEY_PATH, the certificate alone when only it is set, and skips keys made at start', async () => {
    const made = openssl('cfg', 30);
    const tlsFrom = async (env: Record<string, string>) =>
      pick(await runDoctor(config(env), {}, baseDeps({ now: () => new Date() })), 'wiring.tls');
    expect(await tlsFrom({ TLS_CERT_PATH: made.cert, TLS_KEY_PATH: made.key })).toMatchObject({
      status: 'pass',
      detail: expect.stringContaining('matches the key'),
    });
    expect(await tlsFrom({ TLS_CERT_PATH: made.cert })).toMatchObject({
      status: 'pass',
      detail: expect.stringContaining('served by a TLS terminator elsewhere'),
    });
    expect(await tlsFrom({ TLS_KEY_SOURCE: 'generate' })).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('TLS_KEY_SOURCE=generate'),
    });
  });

  it('files that are not PEM fail without echoing them', async () => {
    const junk = join(scratch, 'junk.pem');
    writeFileSync(junk, 'PRIVATE-JUNK-CONTENT');
    const { cert } = openssl('c', 90);
    const r = await tls(cert, junk);
    expect(r).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('not a readable unencrypted PEM private key'),
    });
    expect(JSON.stringify(r)).not.toContain('PRIVATE-JUNK');
    expect(await tls(junk, junk)).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('not a PEM certificate'),
    });
  });
});

describe('doctor: port', () => {
  it('a port in use fails and says what to do', async () => {
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const r = pick(await runDoctor(config({ PORT: String(port) }), {}, baseDeps()), 'wiring.port');
    expect(r).toEqual({
      id: 'wiring.port',
      status: 'fail',
      detail: `127.0.0.1:${port} is in use`,
      hint: expect.stringContaining('PORT'),
    });
  });

  it('a free port passes', async () => {
    const port = await closedPort();
    const r = pick(await runDoctor(config({ PORT: String(port) }), {}, baseDeps()), 'wiring.port');
    expect(r).toEqual({ id: 'wiring.port', status: 'pass', detail: `127.0.0.1:${port} is free` });
  });
});

describe('doctor: 0G targetTeeAddress', () => {
  const brokerConfig = (address: string) => {
    const path = join(scratch, `broker-${address.slice(0, 8)}.yaml`);
    writeFileSync(
      path,
      `network:\n  privateKeys:\n    - ${SECRET_MARKERS.secp256k1Key}\nservice:\n  targetSeparated: true\n  targetTeeAddress: "${address}" # ours\n`,
    );
    return path;
  };

  it('reads service.targetTeeAddress from the broker config (quoted, bare, commented)', () => {
    expect(targetTeeAddressesOf('service:\n  targetTeeAddress: "0xAb"  # c\n  x: 1\n')).toEqual(['0xAb']);
    expect(targetTeeAddressesOf("  targetTeeAddress: '0xcd'\n")).toEqual(['0xcd']);
    expect(targetTeeAddressesOf('targetTeeAddress: 0xef\n')).toEqual(['0xef']);
    expect(targetTeeAddressesOf('targetUrl: x\n')).toEqual([]);
  });

  it('the broker registers our address: pass (case-insensitive); and the wallet key is never shown', async () => {
    const socket = await kms();
    const results = await runDoctor(
      config({ KEY_SOURCE: 'dstack', DSTACK_SOCKET: socket }),
      { zgBrokerConfigPath: brokerConfig(KMS_ADDRESS.toLowerCase()) },
      baseDeps(),
    );
    expect(pick(results, 'zg.target')).toMatchObject({
      status: 'pass',
      detail: expect.stringContaining(`targetTeeAddress equals our signing address ${KMS_ADDRESS}`),
    });
    expect(JSON.stringify(results)).not.toContain(SECRET_MARKERS.secp256k1Key);
  });

  it('another address: a failure telling what to register', async () => {
    const socket = await kms();
    const other = `0x${'12'.repeat(20)}`;
    const r = pick(
      await runDoctor(
        config({ KEY_SOURCE: 'dstack', DSTACK_SOCKET: socket }),
        { zgTargetTeeAddress: other },
        baseDeps(),
      ),
      'zg.target',
    );
    expect(r).toMatchObject({
      status: 'fail',
      detail: `--zg-target-tee-address: targetTeeAddress ${other} is not our signing address ${KMS_ADDRESS}`,
      hint: expect.stringContaining(`targetTeeAddress: ${KMS_ADDRESS}`),
    });
  });

  it('a placeholder left in the broker config fails; no config: skipped', async () => {
    const socket = await kms();
    const path = join(scratch, 'placeholder.yaml');
    writeFileSync(path, 'service:\n  targetTeeAddress: "<0x signing address>"\n');
    const results = await runDoctor(
      config({ KEY_SOURCE: 'dstack', DSTACK_SOCKET: socket }),
      { zgBrokerConfigPath: path },
      baseDeps(),
    );
    expect(pick(results, 'zg.target')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('is not an address'),
    });
    expect(pick(await runDoctor(config(), {}, baseDeps()), 'zg.target')).toMatchObject({ status: 'skip' });
  });
});

/** A loopback port nothing listens on. */
const closedPort = async (): Promise<number> => {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
};
