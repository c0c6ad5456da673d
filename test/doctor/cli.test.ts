import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { doctorCommand } from '../../src/cli/doctor.js';
import type { DoctorDeps } from '../../src/doctor/index.js';
import { loadSyntheticGpuFixtures, synthesizeGpuEvidence } from '../../src/gpu/index.js';
import { type FakeAgent, sendJson, startFakeAgent } from '../dstack/agent-server.js';
import { SECRET_MARKERS } from '../secrets.js';
import {
  bareEnv,
  baseDeps,
  cleanupScratch,
  GPU_NONCE,
  json,
  LIBTDX,
  type Loopback,
  NVML,
  normalize,
  nvmlDouble,
  scratch,
  startLoopback,
  tdxDouble,
} from './harness.js';

const run = async (argv: string[], env: Record<string, string>, deps: Partial<DoctorDeps> = baseDeps()) => {
  let out = '';
  let err = '';
  const code = await doctorCommand(
    argv,
    env,
    { write: (t: string) => (out += t) },
    { write: (t: string) => (err += t) },
    deps,
  );
  return { code, out, err };
};

/** Ephemeral keys are random: their address and public key are masked in snapshots. */
const stable = (text: string) =>
  normalize(text)
    .replace(/0x[0-9a-fA-F]{40}/g, '0x<address>')
    .replace(/\b[0-9a-f]{64}\b/g, '<ed25519>')
    .replace(/\(report \d+ B\)/g, '(report <n> B)');

let agent: FakeAgent | undefined;
let upstream: Loopback | undefined;
beforeEach(() => {
  tdxDouble.reset();
  nvmlDouble.reset();
});
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  await upstream?.close();
  upstream = undefined;
});
afterAll(cleanupScratch);

describe('teeml-sidecar doctor', () => {
  it('on a machine without TEE or GPU (the defaults): says exactly that, with hints, and exits 1', async () => {
    const { code, out, err } = await run([], bareEnv());
    expect(code).toBe(1);
    expect(err).toBe('');
    expect(stable(out)).toMatchSnapshot();
  });

  it('--json: {"checks":[{id,status,detail,hint}]} with a hint on every fail and warn, null on a pass', async () => {
    const { code, out } = await run(['--json'], bareEnv());
    expect(code).toBe(1);
    const parsed = JSON.parse(out) as { checks: Record<string, unknown>[] };
    expect(out.endsWith('}\n')).toBe(true);
    for (const check of parsed.checks) {
      expect(Object.keys(check)).toEqual(['id', 'status', 'detail', 'hint']);
      expect(['pass', 'warn', 'fail', 'skip']).toContain(check['status']);
      if (check['status'] === 'pass') expect(check['hint']).toBeNull();
      if (check['status'] === 'fail' || check['status'] === 'warn')
        expect(check['hint']).toEqual(expect.any(String));
    }
    expect(parsed.checks.map((c) => c['id'])).toEqual([
      'config',
      'tee.present',
      'tee.provider',
      'tee.quote',
      'tee.verify',
      'gpu.nvml',
      'gpu.evidence',
      'gpu.nras',
      'keys.source',
      'wiring.upstream',
      'wiring.redis',
      'wiring.tls',
      'wiring.port',
      'zg.target',
      'zg.chain',
    ]);
  });

  it('--json verdict: development on a machine without a TEE in simulated mode, and says that is fine', async () => {
    const { code, out } = await run(['--json'], bareEnv());
    expect(code).toBe(1);
    const parsed = JSON.parse(out) as { verdict: string; summary: string };
    expect(parsed.verdict).toBe('development');
    expect(parsed.summary).toContain(
      'simulated mode (TEE_PROVIDER=simulated, the default) is fine for development',
    );
    const human = await run([], bareEnv());
    expect(human.out).toContain('verdict: development: no TEE on this machine');
  });

  it('--json verdict: not-ready when a real TEE is asked for and none is here, with the development hint', async () => {
    const { out } = await run(['--json'], bareEnv({ TEE_PROVIDER: 'auto', GPU_EVIDENCE: 'none' }));
    const parsed = JSON.parse(out) as { verdict: string; summary: string };
    expect(parsed.verdict).toBe('not-ready');
    expect(parsed.summary).toContain('for development, run with TEE_PROVIDER=simulated');
  });

  it('a working machine (libtdx and NVML doubles, fake KMS, loopback vLLM): exit 0, warnings allowed', async () => {
    const fixtures = await loadSyntheticGpuFixtures();
    const dir = mkdtempSync(join(scratch, 'nvml-'));
    writeFileSync(
      join(dir, 'gpu0.evidence'),
      synthesizeGpuEvidence(fixtures.template, fixtures.leafKey, GPU_NONCE, new Uint8Array(32).fill(1)),
    );
    writeFileSync(join(dir, 'gpu0.chain'), fixtures.chainPem);
    nvmlDouble.setDir(dir);
    nvmlDouble.setGpus(1, 9);
    agent = await startFakeAgent((req, res) => {
      const { path } = JSON.parse(req.body.toString()) as { path: string };
      sendJson(res, { key: createHash('sha256').update(path).digest('hex'), signature_chain: [] });
    });
    upstream = await startLoopback((_req, res) => json(res, { data: [{ id: 'Qwen/Qwen2.5-7B-Instruct' }] }));
    const broker = join(scratch, 'broker.yaml');
    writeFileSync(broker, 'service:\n  targetTeeAddress: "0x0000000000000000000000000000000000000001"\n');
    const env = bareEnv({
      TEE_PROVIDER: 'libtdx',
      LIBTDX_ATTEST_PATH: LIBTDX,
      GPU_EVIDENCE: 'nvml',
      NVML_LIBRARY_PATH: NVML,
      KEY_SOURCE: 'dstack',
      DSTACK_SOCKET: agent.socketPath,
      UPSTREAM_URL: upstream.url,
    });
    const device = join(scratch, 'tdx_guest');
    writeFileSync(device, '');
    const ok = await run([], env, baseDeps({ tdxGuestDevice: device }));
    expect(ok.code).toBe(0);
    expect(
      stable(ok.out).replaceAll(NVML, '<nvml double>').replaceAll(LIBTDX, '<libtdx double>'),
    ).toMatchSnapshot();
    // The same machine with a broker that registered another address: exit 1.
    const wrong = await run(
      ['--json', '--zg-broker-config', broker],
      env,
      baseDeps({ tdxGuestDevice: device }),
    );
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.out).checks.at(-2)).toMatchObject({ id: 'zg.target', status: 'fail' });
  });

  it('never prints a token, an API key or key material', async () => {
    const { out } = await run(
      ['--json'],
      bareEnv({
        ADMIN_TOKEN: SECRET_MARKERS.adminToken,
        AUTH_TOKEN: SECRET_MARKERS.authToken,
        UPSTREAM_API_KEY: SECRET_MARKERS.upstreamKey,
        UPSTREAM_URL: 'http://127.0.0.1:9',
      }),
    );
    for (const secret of Object.values(SECRET_MARKERS)) expect(out).not.toContain(secret);
  });

  it('an invalid configuration is one failed check naming the variable, not its value (exit 1)', async () => {
    const { code, out } = await run(
      ['--json'],
      bareEnv({ PORT: 'not-a-port-secretish', AUTH_TOKEN: 'short' }),
    );
    expect(code).toBe(1);
    const [check] = JSON.parse(out).checks;
    expect(check).toMatchObject({ id: 'config', status: 'fail', detail: expect.stringContaining('PORT') });
    expect(check.detail).toContain('AUTH_TOKEN');
    expect(out).not.toContain('not-a-port-secretish');
  });

  it('usage errors exit 2; --help exits 0', async () => {
    const bad = await run(['--frobnicate'], bareEnv());
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('Usage: teeml-sidecar doctor');
    expect((await run(['--pccs-url', 'ftp://x'], bareEnv())).code).toBe(2);
    const help = await run(['--help'], bareEnv());
    expect(help.code).toBe(0);
    expect(help.out).toContain('--nras');
  });

  it('the doctor itself failing exits 2', async () => {
    const deps = {
      ...baseDeps(),
      get logger(): never {
        throw new Error('broken logger');
      },
    };
    const { code, err } = await run([], bareEnv(), deps);
    expect(code).toBe(2);
    expect(err).toContain('the doctor itself failed: broken logger');
  });

  it('the real entry point: `teeml-sidecar doctor --json` exits 1 on this bare machine', async () => {
    const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
    const result = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', main, 'doctor', '--json'],
      {
        env: { PATH: process.env.PATH ?? '', ...bareEnv() },
      },
    ).then(
      () => ({ code: 0, stdout: '' }),
      (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout }),
    );
    expect(result.code).toBe(1);
    expect(
      JSON.parse(result.stdout).checks.find((c: { id: string }) => c.id === 'tee.present'),
    ).toMatchObject({ status: 'fail' });
  });

  it('a quote call hung in native code: the real entry point still reports and exits', async () => {
    const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
    const script = fileURLToPath(new URL('./hung-entry.ts', import.meta.url));
    const result = await promisify(execFile)(process.execPath, ['--import', 'tsx', script, LIBTDX, main], {
      env: {
        PATH: process.env.PATH ?? '',
        ...bareEnv({
          TEE_PROVIDER: 'libtdx',
          LIBTDX_ATTEST_PATH: LIBTDX,
          GPU_EVIDENCE: 'none',
          ATTESTATION_TIMEOUT_MS: '200',
        }),
      },
      // The double sleeps 60 s: finishing well before proves the process did not wait for it.
      timeout: 20_000,
    }).then(
      () => ({ code: 0, stdout: '' }),
      (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout }),
    );
    expect(result.code).toBe(1);
    const checks = JSON.parse(result.stdout).checks as { id: string; status: string; detail: string }[];
    expect(checks.find((c) => c.id === 'tee.quote')).toMatchObject({
      status: 'fail',
      detail: 'no answer within 200 ms',
    });
  });
});
