import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoFile } from '../deploy/dockerfile-parser.js';

/**
 * The package as a user gets it (issue 22 item 1): `npm pack` in the checkout, `npm install -g` of
 * the tarball into an empty prefix, and the installed `teeml-sidecar` run from a directory outside
 * any checkout, with an environment that holds nothing of this one but PATH and the npm cache. No
 * skip: a machine that cannot pack or install fails here (offline, the npm cache serves it).
 */
const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'teeml-package-'));
const prefix = join(tmp, 'prefix');
const work = join(tmp, 'work');
const bin = join(prefix, 'bin', 'teeml-sidecar');
const children: ChildProcess[] = [];
/** The installed CLI runs with PATH only (and a HOME of its own): nothing of the checkout leaks in. */
const env = (): Record<string, string> => ({
  PATH: `${join(prefix, 'bin')}:${process.env['PATH'] ?? ''}`,
  HOME: tmp,
});
/**
 * npm keeps the user's registry, cache and CA settings, but none of the `npm_*` variables a parent
 * `npm test` sets (npm_config_local_prefix would point installs back into the checkout).
 */
const KEPT_NPM = new Set([
  'npm_config_cache',
  'npm_config_userconfig',
  'npm_config_registry',
  'npm_config_cafile',
]);
const npmEnv = (): Record<string, string> =>
  Object.fromEntries(
    Object.entries(process.env).filter(
      (e): e is [string, string] => e[1] !== undefined && (!e[0].startsWith('npm_') || KEPT_NPM.has(e[0])),
    ),
  );
let tarball = '';
let installLog = '';

const npm = (args: string[], cwd: string) =>
  run('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd,
    env: npmEnv(),
    maxBuffer: 16 * 1024 * 1024,
  });

const cli = (args: string[], extra: Record<string, string> = {}) =>
  run(bin, args, { cwd: work, env: { ...env(), ...extra }, timeout: 60_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({
      code: e.code ?? -1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? '',
    }),
  );

/** Starts the installed CLI and resolves with the first match of `ready` in its output. */
const start = (args: string[], ready: RegExp, extra: Record<string, string> = {}): Promise<string> =>
  new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      cwd: work,
      env: { ...env(), ...extra },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    const timer = setTimeout(() => reject(new Error(`not ready in 30 s:\n${output}`)), 30_000);
    const take = (chunk: Buffer) => {
      output += chunk.toString();
      const dir = process.env['TEEML_TEST_LOG_DIR'];
      if (dir !== undefined) appendFileSync(`${dir}/${process.pid}.log`, chunk);
      const m = ready.exec(output);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('exit', (code) => reject(new Error(`exited ${code} before it was ready:\n${output}`)));
  });

beforeAll(async () => {
  const packed = await npm(['pack', '--pack-destination', tmp, '--silent'], repoFile('.'));
  tarball = join(tmp, packed.stdout.trim().split('\n').pop() ?? '');
  installLog = (await npm(['install', '-g', '--prefix', prefix, tarball], tmp)).stderr;
  await run('mkdir', ['-p', work]);
}, 300_000);

afterAll(async () => {
  await Promise.all(
    children
      .filter((child) => child.exitCode === null && child.signalCode === null)
      .map((child) => {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        return exited;
      }),
  );
  // Two installed trees (the prefix and the ESM project): slow to delete on a busy disk.
  await rm(tmp, { recursive: true, force: true });
}, 120_000);

/**
 * The in-process client from the installed package (issue 22 item 3): the openai SDK with
 * `fetch: await createVerifiedFetch(...)`, a JSON and a streamed chat, then the simulated provider
 * refused without allowSimulated.
 */
const CHAT_SOURCE = `import OpenAI from 'openai';
import { AttestationRefusedError, createVerifiedFetch } from 'teeml-sidecar/client';
const provider = process.argv[2] ?? '';
const fetch = await createVerifiedFetch({ provider, allowSimulated: true, policy: { offline: true } });
const openai = new OpenAI({ baseURL: 'http://teeml.invalid/v1', apiKey: 'unused', fetch });
const messages = [{ role: 'user' as const, content: 'Hello' }];
const { data, response } = await openai.chat.completions.create({ model: 'teeml-demo', messages }).withResponse();
const streamed = await openai.chat.completions.create({ model: 'teeml-demo', messages, stream: true }).withResponse();
let text = '';
for await (const chunk of streamed.data) text += chunk.choices[0]?.delta.content ?? '';
await fetch.close();
const refusal = await createVerifiedFetch({ provider, policy: { offline: true } }).then(() => undefined, (e: unknown) => e);
console.log(JSON.stringify({
  json: response.headers.get('x-teeml-verification'),
  answer: (data.choices[0]?.message.content ?? '').includes('demo upstream'),
  stream: streamed.response.headers.get('x-teeml-verification'),
  streamed: text.includes('demo upstream'),
  refused: refusal instanceof AttestationRefusedError ? refusal.check : String(refusal),
  hint: refusal instanceof AttestationRefusedError && (refusal.hint ?? '').includes('allowSimulated'),
}));
`;

describe('the npm package', () => {
  it('installs without an engine warning on this Node.js, and so does npm ci of the checkout', async () => {
    expect(installLog).not.toContain('EBADENGINE');
    // npm ci resolves every locked package, dev dependencies included (openai 7 wanted Node >= 22).
    const ci = join(tmp, 'ci');
    await run('mkdir', ['-p', ci]);
    copyFileSync(repoFile('package.json'), join(ci, 'package.json'));
    copyFileSync(repoFile('package-lock.json'), join(ci, 'package-lock.json'));
    const { stderr } = await npm(['ci', '--dry-run', '--ignore-scripts'], ci);
    expect(stderr).not.toContain('EBADENGINE');
  }, 60_000);

  it('ships dist, the synthetic GPU fixtures and docs, and no tests, sources or other fixtures', async () => {
    const { stdout } = await run('tar', ['tzf', tarball]);
    const files = stdout.trim().split('\n');
    expect(files).toContain('package/dist/cli/main.js');
    expect(files).toContain('package/dist/verifier/index.d.ts');
    expect(files).toContain('package/dist/client/index.d.ts');
    expect(files).toContain('package/dist/tapp/tapp-service.proto');
    expect(files).toContain('package/attestation-fixtures/gpu/synthetic-root.sha256');
    expect(files).toContain('package/docs/verifier-api.md');
    const stray = files.filter(
      (f) =>
        /^package\/(test|src|native|bench|scripts|deploy|\.ci)\//.test(f) ||
        f.endsWith('.map') ||
        f.endsWith('.test.js'),
    );
    expect(stray).toEqual([]);
  });

  it('serves, verifies, gateways, re-checks receipts and runs the doctor from the installed copy', async () => {
    const sidecar = await start(['serve'], /"url":"(http:\/\/127\.0\.0\.1:\d+)"/, {
      HOST: '127.0.0.1',
      PORT: '0',
    });
    const verified = await cli(['verify', sidecar, '--allow-simulated', '--offline']);
    expect(verified.stdout).toContain('verdict: PASS');
    expect(verified.code).toBe(0);

    const receipts = join(work, 'receipts.jsonl');
    const gateway = await start(
      ['gateway', '--provider', sidecar, '--allow-simulated', '--port', '0', '--receipts', receipts],
      /listening on (http:\/\/127\.0\.0\.1:\d+)\/v1/,
    );
    const client = new OpenAI({ baseURL: `${gateway}/v1`, apiKey: 'unused' });
    const { data, response } = await client.chat.completions
      .create({ model: 'teeml-demo', messages: [{ role: 'user', content: 'Hello' }] })
      .withResponse();
    expect(response.headers.get('x-teeml-verification')).toBe('verified');
    expect(data.choices[0]?.message.content).toContain('demo upstream');

    // The receipts were checked against a simulated attestation: re-checking them must accept it too.
    const rechecked = await cli(['receipts', 'verify', receipts, '--allow-simulated']);
    expect(rechecked.stdout).toContain('verdict: PASS SIMULATED (1 receipts');
    expect(rechecked.code).toBe(0);

    const doctor = await cli(['doctor', '--json']);
    const report = JSON.parse(doctor.stdout) as { verdict?: unknown };
    expect(['ready', 'development', 'not-ready']).toContain(report.verdict);
  }, 120_000);

  it('exports teeml-sidecar/verifier and teeml-sidecar/client to a fresh ESM project, with types', async () => {
    const project = join(tmp, 'app');
    await run('mkdir', ['-p', project]);
    writeFileSync(join(project, 'package.json'), '{ "name": "app", "type": "module", "private": true }\n');
    // openai at the checkout's own version: the npm cache already holds it.
    const openaiVersion = (
      JSON.parse(readFileSync(repoFile('package.json'), 'utf8')) as {
        devDependencies: Record<string, string>;
      }
    ).devDependencies['openai'];
    await npm(['install', tarball, '@types/node@20', `openai@${openaiVersion}`], project);
    const sidecar = await start(['serve'], /"url":"(http:\/\/127\.0\.0\.1:\d+)"/, {
      HOST: '127.0.0.1',
      PORT: '0',
    });
    const source = `import { verifyProvider, TCB_STATUSES } from 'teeml-sidecar/verifier';
import type { CheckResult, VerificationResult } from 'teeml-sidecar/verifier';
const result: VerificationResult = await verifyProvider({ baseUrl: process.argv[2] ?? '', allowSimulated: true, offline: true });
const failed: CheckResult[] = result.checks.filter((c) => c.status === 'fail');
console.log(JSON.stringify({ ok: result.ok, failed: failed.map((c) => c.id), tcb: TCB_STATUSES.length > 0 }));
`;
    writeFileSync(join(project, 'check.ts'), source);
    writeFileSync(join(project, 'chat.ts'), CHAT_SOURCE);
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          target: 'es2022',
          strict: true,
          outDir: 'out',
          skipLibCheck: true,
        },
        files: ['check.ts', 'chat.ts'],
      }),
    );
    // The project's types resolve through the package's `exports` (no path into dist/).
    await run(repoFile('node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: project }).catch(
      (e: { stdout?: string }) => {
        throw new Error(`tsc failed:\n${e.stdout ?? ''}`);
      },
    );
    expect(readdirSync(join(project, 'out'))).toContain('check.js');
    const { stdout } = await run(process.execPath, ['out/check.js', sidecar], { cwd: project, env: env() });
    expect(JSON.parse(stdout)).toEqual({ ok: true, failed: [], tcb: true });
    const chat = await run(process.execPath, ['out/chat.js', sidecar], { cwd: project, env: env() });
    expect(JSON.parse(chat.stdout)).toEqual({
      json: 'verified',
      answer: true,
      stream: 'pending',
      streamed: true,
      refused: 'report.simulated',
      hint: true,
    });
  }, 120_000);
});
