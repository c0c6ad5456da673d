import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAt, verifyCommand } from '../../src/cli/verify.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';

const run = async (argv: string[], deps = {}) => {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const code = await verifyCommand(argv, stdout, stderr, deps);
  return { code, out, err };
};

let sidecar: TestSidecar;
beforeAll(async () => {
  sidecar = await startTestSidecar();
});
afterAll(async () => {
  await sidecar.close();
});

describe('teeml-sidecar verify', () => {
  it('--allow-simulated --json: exit 0 and a machine-readable verdict', async () => {
    const { code, out } = await run([sidecar.url, '--allow-simulated', '--json']);
    expect(code).toBe(0);
    const result = JSON.parse(out) as { verdict: string; checks: { id: string; status: string }[] };
    expect(result.verdict).toBe('pass');
    expect(result.checks.find((c) => c.id === 'signature.stream.signer')?.status).toBe('pass');
  });

  it('without --allow-simulated: exit 1, one line per check naming the simulated check', async () => {
    const { code, out } = await run([sidecar.url]);
    expect(code).toBe(1);
    expect(out).toMatch(/^FAIL\s+report\.simulated\s/m);
    expect(out).toMatch(/^PASS\s+signature\.json\.signer\s/m);
    expect(out).toContain('verdict: FAIL');
  });

  it('--e2ee --signing-algo ed25519: encrypted completions, their e2ee and signature checks pass', async () => {
    const { code, out } = await run([
      sidecar.url,
      '--allow-simulated',
      '--offline',
      '--e2ee',
      '--signing-algo',
      'ed25519',
    ]);
    expect(code).toBe(0);
    expect(out).toMatch(/^PASS\s+e2ee\.json\s/m);
    expect(out).toMatch(/^PASS\s+e2ee\.stream\s.*heard our exact prompt/m);
    expect(out).toMatch(/^PASS\s+signature\.stream\.signer\s.*ed25519/m);
  });

  it('--no-completion skips the signature checks; simulated passes are starred', async () => {
    const { code, out } = await run([sidecar.url, '--allow-simulated', '--no-completion', '--offline']);
    expect(code).toBe(0);
    expect(out).toMatch(/^SKIP\s+signature\.json\.text\s/m);
    expect(out).toMatch(/^PASS\*\s+tdx\.quote\s/m);
    expect(out).toContain('--allow-simulated: a simulated provider proves nothing');
  });

  it('--expect-address other than the attested one: exit 1', async () => {
    const { code, out } = await run([
      sidecar.url,
      '--allow-simulated',
      '--no-completion',
      '--expect-address',
      `0x${'ab'.repeat(20)}`,
    ]);
    expect(code).toBe(1);
    expect(out).toMatch(/^FAIL\s+signing\.expected-address\s/m);
  });

  it.each([
    [[]],
    [['--bogus', 'http://x']],
    [['not a url']],
    [['http://x', 'http://y']],
    [['http://x', '--signing-algo', 'rsa']],
    [['http://x', '--accept-tcb', 'Sometimes']],
    [['http://x', '--compose-hash', 'ab'.repeat(32), '--compose-file', 'f.json']],
    [['http://x', '--mrtd', 'abcd']],
    [['http://x', '--at', 'yesterday']],
    [['http://x', '--expect-address', '0x123']],
  ])('usage error %j: exit 2', async (argv) => {
    const { code, err } = await run(argv);
    expect(code).toBe(2);
    expect(err).toContain('Usage: teeml-sidecar verify');
  });

  it('--collateral reads the file through the injected reader; an unreadable one is a usage error', async () => {
    const asked: string[] = [];
    const { code, err } = await run(['http://x', '--collateral', '/nowhere.json'], {
      readFile: async (path: string) => {
        asked.push(path);
        throw new Error('ENOENT');
      },
    });
    expect(asked).toEqual(['/nowhere.json']);
    expect(code).toBe(2);
    expect(err).toContain('--collateral');
  });

  it('--help prints usage and exits 0', async () => {
    const { code, out } = await run(['--help']);
    expect(code).toBe(0);
    expect(out).toContain('--allow-simulated');
  });

  it('parses --at as Unix seconds or ISO 8601', () => {
    expect(parseAt('1782700000')).toBe(1782700000);
    expect(parseAt('2026-06-29T02:26:40Z')).toBe(1782700000);
  });
});

describe('teeml-sidecar verify --api-key', () => {
  it('verifies a provider that requires a bearer token, and never prints the token', async () => {
    const token = 'verify-cli-token-0123456789';
    const guarded = await startTestSidecar({ AUTH_TOKEN: token });
    try {
      const without = await run([guarded.url, '--allow-simulated']);
      expect(without.code).toBe(1);
      expect(without.out).toMatch(/^FAIL\s+signature\.json\.text\s/m);
      const withKey = await run([guarded.url, '--allow-simulated', '--api-key', token]);
      expect(withKey.code).toBe(0);
      expect(withKey.out + withKey.err).not.toContain(token);
    } finally {
      await guarded.close();
    }
  });
});
