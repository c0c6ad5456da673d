import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { delimiter, join } from 'node:path';

/**
 * Real Redis servers for the tests. `.ci/run` starts one and exports REDIS_TEST_URL; a developer
 * without it gets a private `redis-server` child per test file when the binary is on PATH, and the
 * Redis tests are skipped otherwise. Under CI (CI=true) a missing Redis fails the run instead: a
 * green CI must not hide skipped tests.
 *
 * Tests that stop and restart Redis always use a private child (never the shared server).
 */

const findBinary = (name: string): string | undefined => {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
};

export const REDIS_BINARY = findBinary('redis-server');
const SHARED_URL = process.env['REDIS_TEST_URL'] || undefined;
const IN_CI = process.env['CI'] === 'true';

/** Why Redis tests cannot run here, or undefined when they can. Throws under CI. */
export const redisSkipReason = (needsBinary: boolean): string | undefined => {
  const reason =
    REDIS_BINARY === undefined && (needsBinary || SHARED_URL === undefined)
      ? needsBinary
        ? 'redis-server is not on PATH (these tests stop and restart Redis; apt-get install redis-server)'
        : 'neither REDIS_TEST_URL nor redis-server on PATH (apt-get install redis-server)'
      : undefined;
  if (reason !== undefined && IN_CI) throw new Error(`CI=true but Redis is unavailable: ${reason}`);
  return reason;
};

/** For a single test that freezes or kills its own server while the rest use REDIS_TEST_URL. */
export const noBinaryOutsideCi = REDIS_BINARY === undefined && !IN_CI;

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });

/** Sends one inline PING; true when the server answers +PONG. */
const pings = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = new Socket();
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
    socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
  });

/** Polls `check` every 20 ms until it holds or `timeoutMs` passes (bounded, never open-ended). */
export const waitFor = async (
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** A redis-server child process this test owns: it can be killed, frozen and restarted on its port. */
export class RedisProcess {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  /** A server on a free loopback port; `started: false` only reserves the port (Redis "down"). */
  static async create(started = true): Promise<RedisProcess> {
    const server = new RedisProcess(await freePort());
    if (started) await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  async start(): Promise<void> {
    if (REDIS_BINARY === undefined) throw new Error('redis-server is not on PATH');
    if (this.child !== undefined) return;
    // No persistence: a restart loses everything, the worst case for the replay test.
    const child = spawn(
      REDIS_BINARY,
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    await waitFor(`redis-server on port ${this.port}`, () => pings(this.port), 10_000);
  }

  /** SIGKILL: a crash, not a clean shutdown. Resolves once the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.child = undefined;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exited;
  }

  /** SIGSTOP: the socket stays open and nothing answers (a hung Redis). */
  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }
}

export interface TestRedis {
  url: string;
  close(): Promise<void>;
}

/** The shared CI server when REDIS_TEST_URL is set, else a private child. */
export const testRedis = async (): Promise<TestRedis> => {
  if (SHARED_URL !== undefined) return { url: SHARED_URL, close: async () => undefined };
  const server = await RedisProcess.create();
  return { url: server.url, close: () => server.kill() };
};

/** A key prefix no other test (or test file running in parallel) uses. */
export const uniquePrefix = (): string => `teeml-test:${randomUUID()}:`;
