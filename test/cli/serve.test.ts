import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { repoFile } from '../deploy/dockerfile-parser.js';

/** Runs `teeml-sidecar serve` as a real process and returns how it ended and what it logged. */
const serve = (env: Record<string, string>): Promise<{ code: number | null; output: string }> =>
  new Promise((resolve) => {
    const child = spawn(repoFile('node_modules/.bin/tsx'), [repoFile('src/cli/main.ts'), 'serve'], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
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
      expect(output).toContain('start-up failed');
      expect(output).toContain('EADDRINUSE');
    } finally {
      blocker.close();
    }
  }, 30_000);

  it('exits 2 on a configuration error, naming the variable', async () => {
    const { code, output } = await serve({ PORT: 'not-a-port' });
    expect(code).toBe(2);
    expect(output).toContain('PORT');
  }, 30_000);
});
