import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_OPTIONS, GATEWAY_USAGE } from '../../src/cli/gateway.js';
import { receiptsCommand } from '../../src/cli/receipts.js';
import { json, postJson, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { runGatewayCli, sink } from './run-cli.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

let sidecar: TestSidecar;
let dir: string;
beforeAll(async () => {
  sidecar = await startTestSidecar();
  dir = mkdtempSync(join(tmpdir(), 'teeml-gateway-cli-'));
  writeFileSync(join(dir, 'policy.json'), '{"offline":true}');
});
afterAll(async () => {
  await sidecar.close();
  rmSync(dir, { recursive: true, force: true });
});

const run = (argv: string[], env: Record<string, string> = {}) => runGatewayCli(argv, env);

describe('teeml-sidecar gateway (CLI)', () => {
  it('--help and the README list every option with its environment variable', async () => {
    const { exit, out } = await run(['--help']);
    expect(await exit).toBe(0);
    for (const o of GATEWAY_OPTIONS) {
      expect(out.text()).toContain(`--${o.flag}`);
      expect(out.text()).toContain(o.env);
      expect(readme).toMatch(new RegExp(`^\\| \`--${o.flag}[^\\x60]*\` \\| \`${o.env}\` \\|`, 'm'));
    }
    expect(GATEWAY_USAGE).toContain('X-TeeML-Verification');
  });

  it('usage errors exit 2: no provider, off loopback without a token, a bad policy', async () => {
    for (const [argv, message] of [
      [[], /--provider <url> is required/],
      [['--provider', sidecar.url, '--host', '0.0.0.0'], /--auth-token is required/],
      [['--provider', sidecar.url, '--on-failure', 'shrug'], /--on-failure/],
      [['--provider', 'ftp://x'], /expected http/],
      [['--provider', sidecar.url, '--policy', join(dir, 'missing.json')], /cannot read/],
      [['--provider', sidecar.url, '--api-key'], /argument missing|api-key/],
    ] as const) {
      const { exit, err } = await run([...argv]);
      expect(await exit).toBe(2);
      expect(err.text()).toMatch(message);
    }
  });

  it('reads its options from the environment, serves, writes receipts that `receipts verify` accepts', async () => {
    const receipts = join(dir, 'r.jsonl');
    const { gateway, out, stop } = await run(['--port', '0'], {
      TEEML_GATEWAY_PROVIDER: sidecar.url,
      TEEML_GATEWAY_ALLOW_SIMULATED: 'true',
      TEEML_GATEWAY_POLICY: join(dir, 'policy.json'),
      TEEML_GATEWAY_RECEIPTS: receipts,
      TEEML_GATEWAY_HEADERS: 'X-Extra: one\nX-Other: two',
      TEEML_GATEWAY_AUTH_TOKEN: SECRET_MARKERS.authToken,
      TEEML_GATEWAY_REATTEST_INTERVAL: '90s',
    });
    expect(gateway).toBeDefined();
    expect(out.text()).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+\/v1.*attested, signing address 0x/);
    const url = gateway?.url ?? '';
    const denied = await postJson(`${url}/v1/chat/completions`, { model: 'teeml-demo', messages: [] });
    expect(denied.status).toBe(401);
    const res = await postJson(
      `${url}/v1/chat/completions`,
      { model: 'teeml-demo', messages: [{ role: 'user', content: SECRET_MARKERS.prompt }] },
      { authorization: `Bearer ${SECRET_MARKERS.authToken}` },
    );
    expect(res.status).toBe(200);
    expect(res.headers['x-teeml-verification']).toBe('verified');
    expect(json<{ id: string }>(res).id).toMatch(/^chatcmpl-/);
    expect(await stop()).toBe(0);

    const ok = sink();
    expect(await receiptsCommand(['verify', receipts, '--allow-simulated'], ok.stream, sink().stream)).toBe(
      0,
    );
    expect(ok.text()).toMatch(/verdict: PASS SIMULATED \(1 receipts, 1 attestations, 0 failed lines\)/);
    const lines = readFileSync(receipts, 'utf8').trimEnd().split('\n');
    const receipt = JSON.parse(lines[1] ?? '{}') as Record<string, string>;
    const swapped = {
      ...receipt,
      response_sha256: (receipt['response_sha256'] ?? '').replace(/^./, (c) => (c === '0' ? '1' : '0')),
    };
    writeFileSync(join(dir, 'bad.jsonl'), `${lines[0]}\n${JSON.stringify(swapped)}\n`);
    const bad = sink();
    expect(
      await receiptsCommand(
        ['verify', join(dir, 'bad.jsonl'), '--allow-simulated'],
        bad.stream,
        sink().stream,
      ),
    ).toBe(1);
    expect(bad.text()).toMatch(/FAIL line 2 receipt .*response sha256/);
    expect(await receiptsCommand(['check', receipts], sink().stream, sink().stream)).toBe(2);
  });
});
