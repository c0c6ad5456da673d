import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGatewayOptions } from '../../src/cli/gateway.js';
import type { ProviderLink } from '../../src/gateway/index.js';
import { postJson, rawRequest, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { type Mitm, startMitm } from './harness.js';
import { runGatewayCli } from './run-cli.js';

/**
 * The gateway CLI's flags for its edges: tokens from files (a token on the command line shows in
 * `ps`; issue 21, item 12), the Host and Origin allow-lists (item 6), and the E2EE requirement's
 * default in 0G mode (item 3).
 */
let sidecar: TestSidecar;
let mitm: Mitm;
let dir: string;
beforeAll(async () => {
  sidecar = await startTestSidecar();
  mitm = await startMitm(sidecar.url);
  dir = mkdtempSync(join(tmpdir(), 'teeml-gateway-edge-'));
  writeFileSync(join(dir, 'api-key'), `${SECRET_MARKERS.upstreamKey}\n`);
  writeFileSync(join(dir, 'auth-token'), `${SECRET_MARKERS.authToken}\n`);
  writeFileSync(join(dir, 'empty'), '\n');
});
afterAll(async () => {
  await mitm.close();
  await sidecar.close();
  rmSync(dir, { recursive: true, force: true });
});

const chat = { model: 'teeml-demo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };

describe('gateway CLI: token files, browser allow-lists, 0G E2EE default', () => {
  it('--api-key-file and --auth-token-file: the tokens are read from files, no warning', async () => {
    const { gateway, err, stop } = await runGatewayCli([
      '--provider',
      mitm.url,
      '--allow-simulated',
      '--port',
      '0',
      '--api-key-file',
      join(dir, 'api-key'),
      '--auth-token-file',
      join(dir, 'auth-token'),
    ]);
    try {
      const url = gateway?.url ?? '';
      expect((await postJson(`${url}/v1/chat/completions`, chat)).status).toBe(401);
      const res = await postJson(`${url}/v1/chat/completions`, chat, {
        authorization: `Bearer ${SECRET_MARKERS.authToken}`,
      });
      expect(res.status).toBe(200);
      const sent = mitm.seen.filter((s) => s.path.includes('chat/completions')).at(-1);
      expect(sent?.headers.authorization).toBe(`Bearer ${SECRET_MARKERS.upstreamKey}`);
      expect(err.text()).not.toContain('warning');
    } finally {
      expect(await stop()).toBe(0);
    }
  });

  it('--api-key / --auth-token on the command line still work, with a warning that names no value', async () => {
    const { gateway, err, stop } = await runGatewayCli([
      '--provider',
      sidecar.url,
      '--allow-simulated',
      '--port',
      '0',
      `--api-key=${SECRET_MARKERS.upstreamKey}`,
      '--auth-token',
      SECRET_MARKERS.authToken,
    ]);
    try {
      expect(gateway).toBeDefined();
      expect(err.text()).toContain('--api-key on the command line is visible to other users (ps)');
      expect(err.text()).toContain('--auth-token on the command line is visible to other users (ps)');
      for (const secret of Object.values(SECRET_MARKERS)) expect(err.text()).not.toContain(secret);
    } finally {
      expect(await stop()).toBe(0);
    }
    // The environment is not in ps: no warning.
    const quiet = await runGatewayCli(['--provider', sidecar.url, '--allow-simulated', '--port', '0'], {
      TEEML_GATEWAY_AUTH_TOKEN: SECRET_MARKERS.authToken,
    });
    expect(quiet.err.text()).toBe('');
    expect(await quiet.stop()).toBe(0);
  });

  it('usage errors name the flag, never the token', async () => {
    for (const [argv, message] of [
      [['--api-key', 'k', '--api-key-file', join(dir, 'api-key')], /--api-key or --api-key-file, not both/],
      [['--auth-token-file', join(dir, 'missing')], /--auth-token-file: cannot read the file/],
      [['--api-key-file', join(dir, 'empty')], /--api-key-file: expected one token/],
      [['--allow-origin', 'http://localhost:5173/app'], /--allow-origin: expected an origin/],
      [['--allow-origin', '*'], /--allow-origin/],
      [['--allowed-host', 'evil.example/x'], /--allowed-host/],
    ] as const) {
      const { exit, err } = await runGatewayCli(['--provider', sidecar.url, ...argv]);
      expect(await exit, argv.join(' ')).toBe(2);
      expect(err.text()).toMatch(message);
      expect(err.text()).not.toContain(SECRET_MARKERS.upstreamKey);
    }
  });

  it('--allowed-host and --allow-origin (flags or environment) reach the guard', async () => {
    const { gateway, stop } = await runGatewayCli(
      ['--provider', sidecar.url, '--allow-simulated', '--port', '0'],
      {
        TEEML_GATEWAY_ALLOWED_HOSTS: 'gateway.lan\nother.lan',
        TEEML_GATEWAY_ALLOW_ORIGINS: 'http://localhost:5173',
      },
    );
    try {
      const url = gateway?.url ?? '';
      const port = new URL(url).port;
      expect((await rawRequest(`${url}/health`, { headers: { host: `gateway.lan:${port}` } })).status).toBe(
        200,
      );
      expect((await rawRequest(`${url}/health`, { headers: { host: `evil.lan:${port}` } })).status).toBe(403);
      const cors = await rawRequest(`${url}/health`, { headers: { origin: 'http://localhost:5173' } });
      expect(cors.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    } finally {
      expect(await stop()).toBe(0);
    }
  });

  it('0G: requireE2ee defaults off for a broker that signs, on for a model TEE behind it; the policy wins', async () => {
    const linkOf = (layout: string) => async () => ({ layout }) as unknown as ProviderLink;
    const built = async (layout: string, values: Record<string, unknown> = {}) =>
      (
        await buildGatewayOptions(values, {
          linkFor: linkOf(layout),
          readFile: async () => new TextEncoder().encode('{"requireE2ee":true}'),
        })
      ).e2ee?.required;
    expect(await built('broker-signed')).toBe(false);
    expect(await built('separated')).toBe(true);
    const options = await buildGatewayOptions(
      { policy: 'p.json' },
      {
        linkFor: linkOf('broker-signed'),
        readFile: async () => new TextEncoder().encode('{"requireE2ee":true}'),
      },
    );
    expect(options.policy.requireE2ee).toBe(true);
  });
});
