import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execForm, parseCopy, readDockerfile, repoFile, type Stage } from './dockerfile-parser.js';

/**
 * The image builds where a Docker engine exists; here, the same steps run in a clean temp directory:
 * the build stage's COPYs (the files git knows, tracked or not ignored), its RUN lines verbatim
 * (npm ci from the lockfile, tsc, prune), then the runtime stage's COPY --from=build, and the
 * ENTRYPOINT started with the runtime stage's ENV. Slow (a real npm ci): its own file, 300 s.
 */
const BUILD_TIMEOUT_MS = 300_000;
const WORKDIR = '/app';
const repoRoot = repoFile('');

const stages = readDockerfile();
const stage = (name: string): Stage => {
  const found = stages.find((s) => s.name === name);
  if (found === undefined) throw new Error(`no stage ${name}`);
  return found;
};

/** `K=V K2="V 2"` (ENV or ARG), with ${NAME} expanded from `vars`. */
const assignments = (args: string, vars: Record<string, string>): [string, string][] =>
  [...args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)].map((m) => [
    m[1] as string,
    (m[2] as string)
      .replace(/^"|"$/g, '')
      .replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, n) => vars[n] ?? ''),
  ]);

/** Files under a repository path as the build context would hold them (.dockerignore admits them). */
const contextFiles = (source: string): string[] =>
  execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', source], {
    cwd: repoRoot,
    encoding: 'utf8',
  })
    .split('\n')
    .filter((f) => f !== '' && existsSync(join(repoRoot, f)));

const inside = (root: string, containerPath: string): string => {
  const rel = posix.relative(WORKDIR, posix.resolve(WORKDIR, containerPath));
  if (rel.startsWith('..')) throw new Error(`${containerPath} is outside ${WORKDIR}`);
  return join(root, rel);
};

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });

const exited = (child: ChildProcess): Promise<number | null> =>
  new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });

describe('Dockerfile.tdx build steps in a clean temp directory', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'teeml-image-'));
  const buildDir = join(tmp, 'build');
  const runtimeDir = join(tmp, 'runtime');
  const imageEnv: Record<string, string> = {};
  let entrypoint: string[] = [];
  const children: ChildProcess[] = [];
  const output: string[] = [];

  beforeAll(() => {
    mkdirSync(buildDir);
    mkdirSync(runtimeDir);
    const vars: Record<string, string> = {};
    for (const { keyword, args } of stage('build').instructions) {
      if (keyword === 'ARG' || keyword === 'ENV') for (const [k, v] of assignments(args, vars)) vars[k] = v;
      else if (keyword === 'WORKDIR') expect(args).toBe(WORKDIR);
      else if (keyword === 'COPY') {
        const { sources, dest } = parseCopy(args);
        for (const source of sources) {
          const files = contextFiles(source);
          expect(files.length, source).toBeGreaterThan(0);
          for (const file of files) {
            // COPY semantics: a file lands in a directory destination under its own name; a
            // directory's contents land under the destination.
            const intoDir = dest.endsWith('/') || dest === '.';
            const target =
              file === source
                ? intoDir
                  ? posix.join(dest, posix.basename(file))
                  : dest
                : posix.join(dest, posix.relative(source, file));
            const to = inside(buildDir, target);
            mkdirSync(dirname(to), { recursive: true });
            cpSync(join(repoRoot, file), to);
          }
        }
      } else if (keyword === 'RUN') {
        execFileSync('sh', ['-c', args], {
          cwd: buildDir,
          // Registry access is allowed but the local npm cache answers first.
          env: {
            ...process.env,
            ...vars,
            npm_config_prefer_offline: 'true',
            npm_config_update_notifier: 'false',
          },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
      }
    }
    const vars2: Record<string, string> = {};
    for (const { keyword, args } of stage('runtime').instructions) {
      if (keyword === 'ARG' || keyword === 'ENV') {
        for (const [k, v] of assignments(args, vars2)) {
          vars2[k] = v;
          if (keyword === 'ENV') imageEnv[k] = v;
        }
      } else if (keyword === 'WORKDIR') expect(args).toBe(WORKDIR);
      else if (keyword === 'COPY') {
        const { flags, sources, dest } = parseCopy(args);
        expect(flags['from']).toBe('build');
        for (const source of sources) {
          cpSync(inside(buildDir, source), inside(runtimeDir, dest), { recursive: true });
        }
      } else if (keyword === 'ENTRYPOINT') entrypoint = execForm(args);
    }
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exited(child);
      }
    }
    rmSync(tmp, { recursive: true, force: true });
  });

  const start = (env: Record<string, string>): ChildProcess => {
    const [command, ...args] = entrypoint;
    expect(command).toBe('node');
    const child = spawn(process.execPath, args, {
      cwd: runtimeDir,
      // Only what the image sets plus the test's overrides: nothing leaks in from this shell.
      env: { PATH: process.env['PATH'] ?? '', ...imageEnv, LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // pino logs to stdout; keep both streams for the failure message.
    child.stdout?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    children.push(child);
    return child;
  };

  it('produces a runtime tree with dist, production dependencies and package.json only', () => {
    expect(existsSync(join(runtimeDir, 'dist/cli/main.js'))).toBe(true);
    expect(existsSync(join(runtimeDir, 'dist/tapp/tapp-service.proto'))).toBe(true);
    expect(existsSync(join(runtimeDir, 'node_modules/koffi'))).toBe(true);
    for (const dev of ['typescript', 'vitest', '@biomejs/biome', 'tsx']) {
      expect(existsSync(join(runtimeDir, 'node_modules', dev)), dev).toBe(false);
    }
    expect(existsSync(join(runtimeDir, 'src'))).toBe(false);
    expect(existsSync(join(runtimeDir, 'attestation-fixtures'))).toBe(false);
    expect(existsSync(join(runtimeDir, 'package.json'))).toBe(true);
  });

  it('serves /health from the built entrypoint (simulated TEE, no GPU evidence, a free port)', async () => {
    // GPU_EVIDENCE=none, not simulated: simulated GPUs need attestation-fixtures/gpu, which the image
    // leaves out on purpose (next test).
    const port = await freePort();
    const child = start({
      PORT: String(port),
      HOST: '127.0.0.1',
      TEE_PROVIDER: 'simulated',
      GPU_EVIDENCE: 'none',
    });
    const deadline = Date.now() + 30_000;
    let response: Response | undefined;
    while (response === undefined && Date.now() < deadline && child.exitCode === null) {
      response = await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined);
      if (response === undefined) await new Promise((r) => setTimeout(r, 200));
    }
    expect(response?.status, output.join('')).toBe(200);
    const body = (await response?.json()) as { status: string; version: string; simulated: boolean };
    const pkg = JSON.parse(readFileSync(repoFile('package.json'), 'utf8')) as { version: string };
    // The version comes from package.json at run time (src/server/version.ts), so the image must ship it.
    expect(body).toMatchObject({ status: 'ok', version: pkg.version, simulated: true });
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
  }, 60_000);

  it('cannot serve simulated GPU evidence: the synthetic fixtures are not in the image', async () => {
    const before = output.length;
    const port = await freePort();
    const child = start({
      PORT: String(port),
      HOST: '127.0.0.1',
      TEE_PROVIDER: 'simulated',
      GPU_EVIDENCE: 'simulated',
    });
    // 1: start-up failed (2 would be a configuration error), and for this reason.
    expect(await exited(child)).toBe(1);
    expect(output.slice(before).join('')).toContain('attestation-fixtures/gpu');
  }, 60_000);

  it('refuses to start with the image defaults where no TEE exists (TEE_PROVIDER=auto never simulates)', async () => {
    expect(imageEnv['TEE_PROVIDER']).toBe('auto');
    const before = output.length;
    const port = await freePort();
    const child = start({
      PORT: String(port),
      HOST: '127.0.0.1',
      DSTACK_SOCKET: join(tmp, 'absent.sock'),
      TSM_REPORT_ROOT: join(tmp, 'absent-tsm'),
      LIBTDX_ATTEST_PATH: join(tmp, 'absent-libtdx_attest.so.1'),
    });
    // Refused because no TEE was found, not for some other start-up failure.
    expect(await exited(child)).toBe(1);
    expect(output.slice(before).join('')).toContain('TEE_PROVIDER=auto found no TEE');
  }, 60_000);
});
