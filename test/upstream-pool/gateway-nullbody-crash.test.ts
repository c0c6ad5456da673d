/**
 * a provider's 204/205/304 answer is "null body" for the gateway (nullBody),
 * so callOverPool only `resume()`s the UpstreamResponse and attaches no 'error' listener. undici
 * then fails that response in cases node:http did not (a 304 or 204 carrying a Content-Length: "Response
 * body length does not match content-length header"; a framed 205 body cut short), and dispatchCall
 * destroys the UpstreamResponse with the error. A plain Readable emits 'error' with no listener: an
 * uncaught exception, i.e. the gateway process exits (src/ has no uncaughtException handler).
 * node:http's IncomingMessage (before the change) emits 'error' only when someone listens.
 */
import { Pool } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CallHandle } from '../../src/gateway/in-flight-calls.js';
import { callOverPool } from '../../src/gateway/upstream.js';
import { postJson } from '../e2e/harness.js';
import { caseOf, type HostileStack, startHostileStack } from '../gateway/hostile-provider.js';
import { type RawServer, sleep, startRawServer } from './raw-server.js';

const uncaught: unknown[] = [];
const onUncaught = (err: unknown): void => {
  uncaught.push(err);
};

const answers: Record<string, string> = {
  // RFC 9110 §8.6: a 304 may carry the Content-Length the selected representation would have.
  '304-cl': 'HTTP/1.1 304 Not Modified\r\ncontent-length: 1234\r\n\r\n',
  '204-cl': 'HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n',
  '205-cut': 'HTTP/1.1 205 Reset Content\r\ncontent-length: 100\r\n\r\nabc',
};

let raw: RawServer;
let stack: HostileStack | undefined;

beforeAll(async () => {
  process.on('uncaughtException', onUncaught);
  raw = await startRawServer();
});
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});
afterAll(async () => {
  await raw.close();
  process.off('uncaughtException', onUncaught);
});

describe('a bodiless status the gateway does not read, failed by undici', () => {
  for (const [kase, bytes] of Object.entries(answers)) {
    it(`callOverPool, ${kase}: no uncaught 'error' event (unit level)`, async () => {
      raw.script = (_req, socket) => {
        socket.write(bytes);
        setTimeout(() => socket.destroy(), 20);
      };
      const pool = new Pool(raw.url);
      const before = uncaught.length;
      const upstream = await callOverPool(pool)(new URL(`${raw.url}/v1/chat/completions`), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: new TextEncoder().encode('{}'),
        call: new CallHandle(),
      });
      expect(upstream.body).toBeNull();
      await sleep(200);
      await pool.destroy();
      expect(uncaught.slice(before).map(String)).toEqual([]);
    });

    it(`the gateway survives a provider answering ${kase}`, async () => {
      stack = await startHostileStack();
      stack.hostile.raw = (req, body, socket) => {
        if (!req.url?.startsWith('/v1/chat/completions') || caseOf(body) !== kase) return false;
        socket.write(bytes);
        setTimeout(() => socket.destroy(), 50);
        return true;
      };
      const before = uncaught.length;
      const res = await postJson(`${stack.gateway.url}/v1/chat/completions`, {
        model: 'm',
        user: kase,
        messages: [{ role: 'user', content: 'hi' }],
      });
      await sleep(300);
      expect(res.headers['x-teeml-verification']).not.toBe('verified');
      expect(uncaught.slice(before).map(String)).toEqual([]);
    }, 30_000);
  }
});

describe('in a process of its own (no test runner catching the error)', () => {
  it('a provider answering 304 with a Content-Length does not kill the process', async () => {
    raw.script = (_req, socket) => socket.write(answers['304-cl'] ?? '');
    const { spawn } = await import('node:child_process');
    const child = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'test/upstream-pool/fixtures/nullbody-child.ts',
          `${raw.url}/v1/chat/completions`,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
      });
      p.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      p.on('close', (status) => resolve({ status, stdout, stderr }));
    });
    expect(child.stdout).toContain('status 304');
    expect({
      status: child.status,
      stdout: child.stdout,
      stderr: child.stderr.split('\n').slice(0, 3),
    }).toEqual({
      status: 0,
      stdout: 'status 304\nsurvived\n',
      stderr: [''],
    });
  }, 30_000);
});
