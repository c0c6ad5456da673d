import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { repoFile } from '../deploy/dockerfile-parser.js';

/** Runs `teeml-sidecar serve` as a real process and returns how it ended and what it logged. */
const serve = (
  env: Record<string, string>,
  args: string[] = [],
  until?: RegExp,
): Promise<{ code: number | null; output: string }> =>
  new Promise((resolve) => {
    const child = spawn(repoFile('node_modules/.bin/tsx'), [repoFile('src/cli/main.ts'), 'serve', ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      // A server that started: stop it once the line looked for is out.
      if (until?.test(output)) child.kill('SIGTERM');
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    // A process that keeps running after a failed start is the bug: bound the wait and kill it.
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });

describe('teeml-sidecar serve', () => {
  it('exits non-zero when its port is taken, instead of running on without a listener', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const { port } = blocker.address() as AddressInfo;
    try {
      const { code, output } = await serve({ HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info' });
      expect(code).toBe(1);
      // One plain line naming the address and errno, and a hint: no JSON log line, no stack.
      expect(output).toContain(
        `teeml-sidecar serve: cannot start: cannot listen on 127.0.0.1:${port}: ` +
          `listen EADDRINUSE: address already in use 127.0.0.1:${port}\n` +
          '  hint: another process listens there: stop it, or pick another port with --port (or PORT)\n',
      );
      expect(output).not.toContain('"level":60');
    } finally {
      blocker.close();
    }
  }, 30_000);

  it('exits 2 on a configuration error, naming the variable', async () => {
    const { code, output } = await serve({ PORT: 'not-a-port' });
    expect(code).toBe(2);
    expect(output).toContain('PORT');
  }, 30_000);

  it('TEE_PROVIDER=auto on a machine without a TEE: one plain line naming the cause, and the fix', async () => {
    const { code, output } = await serve({
      HOST: '127.0.0.1',
      PORT: '0',
      TEE_PROVIDER: 'auto',
      DSTACK_SOCKET: '/nonexistent/dstack.sock',
      TSM_REPORT_ROOT: '/nonexistent/tsm/report',
      LIBTDX_ATTEST_PATH: '/nonexistent/libtdx_attest.so.1',
    });
    expect(code).toBe(1);
    expect(output).toMatch(
      /^teeml-sidecar serve: cannot start: TEE_PROVIDER=auto found no TEE \(.*\)\n {2}hint: .*TEE_PROVIDER=simulated \(the default\).*\n$/,
    );
    expect(output).not.toContain('"level"');
  }, 30_000);

  it('--help prints the usage and starts nothing', async () => {
    const { code, output } = await serve({ PORT: '0' }, ['--help']);
    expect(code).toBe(0);
    expect(output).toContain('Usage: teeml-sidecar serve [--port <n>] [--host <addr>]');
    expect(output).not.toContain('listening');
  }, 30_000);

  it('refuses an unknown argument, with the flag probably meant', async () => {
    const { code, output } = await serve({ PORT: '0' }, ['--prot', '19505']);
    expect(code).toBe(2);
    expect(output).toContain('teeml-sidecar serve: unknown option --prot; did you mean --port?');
    const positional = await serve({ PORT: '0' }, ['19505']);
    expect(positional.code).toBe(2);
    expect(positional.output).toContain('unexpected argument "19505"');
  }, 30_000);

  it('--port and --host override PORT and HOST', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const { port } = blocker.address() as AddressInfo;
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    const { output } = await serve(
      { PORT: '1', HOST: '0.0.0.0', LOG_LEVEL: 'info' },
      ['--port', String(port), '--host', '127.0.0.1'],
      /teeml-sidecar listening/,
    );
    expect(output).toContain(`"url":"http://127.0.0.1:${port}"`);
  }, 30_000);
});
