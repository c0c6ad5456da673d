import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { logDestination } from '../../src/log/index.js';

/**
 * The default destination (log/logger.ts) batches lines: a busy process writes them together, a quiet
 * one within a second, and whatever is held is written when the process exits. Run in a child
 * process, since it writes to file descriptor 1.
 */
const run = (script: string): Promise<{ lines: Array<{ at: number; msg: string }>; code: number | null }> =>
  new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: new URL('../..', import.meta.url).pathname,
    });
    const lines: Array<{ at: number; msg: string }> = [];
    let held = '';
    child.stdout.on('data', (chunk: Buffer) => {
      held += chunk.toString('utf8');
      for (let i = held.indexOf('\n'); i >= 0; i = held.indexOf('\n')) {
        lines.push({ at: Date.now() - started, msg: (JSON.parse(held.slice(0, i)) as { msg: string }).msg });
        held = held.slice(i + 1);
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ lines, code }));
  });

const logger =
  "const { createLogger } = await import('./src/log/index.ts'); const log = createLogger('info');";

describe('the default log destination', () => {
  it('writes a lone line within about a second, while the process goes on', async () => {
    const { lines } = await run(
      `${logger} const t0 = Date.now(); log.info('first'); setTimeout(() => { log.info('after ' + (Date.now() - t0)); process.exit(0); }, 1600);`,
    );
    expect(lines.map((l) => l.msg.split(' ')[0])).toEqual(['first', 'after']);
    // The first line came out before the second was logged (the flush timer, not the exit).
    const [first, second] = lines;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThan(300);
  });

  it('writes what it holds when the process exits, and every line of a burst, in order', async () => {
    const { lines, code } = await run(
      `${logger} for (let i = 0; i < 500; i++) log.info('line ' + i); log.warn('last'); process.exit(3);`,
    );
    expect(code).toBe(3);
    expect(lines.map((l) => l.msg)).toEqual([...Array.from({ length: 500 }, (_, i) => `line ${i}`), 'last']);
  });

  it('holds at most 16 MiB for a reader that stops reading (then drops lines, never blocks or grows)', () => {
    const d = logDestination('/dev/null') as unknown as { maxLength: number; minLength: number; end(): void };
    try {
      expect(d.maxLength).toBe(16 * 1024 * 1024);
      expect(d.minLength).toBe(4096);
    } finally {
      d.end();
    }
  });
});
