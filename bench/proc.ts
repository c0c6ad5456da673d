/**
 * Child processes and what /proc says about them: CPU time (utime + stime, summed over a process
 * and its children, e.g. nginx's master and worker) and resident memory.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

const statFields = (pid: number): string[] | undefined => {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces; everything after the last ')' is space-separated.
    return raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
};

/** The process and every descendant. */
export const processTree = (root: number): number[] => {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const f = statFields(pid);
    if (f !== undefined) parentOf.set(pid, Number(f[1]));
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    for (const [pid, ppid] of parentOf) if (ppid === out[i]) out.push(pid);
  }
  return out;
};

/** CPU seconds (user + system) used so far by the process tree. */
export const cpuSeconds = (root: number): number => {
  let ticks = 0;
  for (const pid of processTree(root)) {
    const f = statFields(pid);
    // After comm: state(0) ppid(1) … utime(11) stime(12).
    if (f !== undefined) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / TICKS_PER_SECOND;
};

/** Resident set size in bytes, summed over the process tree. */
export const rssBytes = (root: number): number => {
  let kb = 0;
  for (const pid of processTree(root)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m !== null) kb += Number(m[1]);
    } catch {
      // gone
    }
  }
  return kb * 1024;
};

export interface Child {
  proc: ChildProcess;
  pid: number;
  port: number;
  /** Request/reply over IPC (only the sidecar child answers). */
  ask<T>(msg: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

/**
 * Starts a child and waits for it to report its port over IPC: a `.ts` file through tsx, a `.mjs`
 * file (the sidecar, from dist/) with plain node.
 */
export const startChild = (
  file: string,
  env: Record<string, string>,
  nodeFlags: string[] = [],
): Promise<Child> =>
  new Promise((resolve, reject) => {
    const loader = file.endsWith('.ts') ? ['--import', 'tsx'] : [];
    const proc = spawn(process.execPath, [...nodeFlags, ...loader, file], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const timer = setTimeout(() => reject(new Error(`${file} did not start`)), 30_000);
    proc.once('error', reject);
    proc.once('message', (msg: { port: number }) => {
      clearTimeout(timer);
      resolve({
        proc,
        pid: proc.pid as number,
        port: msg.port,
        ask: <T>(m: Record<string, unknown>) =>
          new Promise<T>((done) => {
            proc.once('message', (reply: T) => done(reply));
            proc.send(m);
          }),
        stop: () => stopProcess(proc),
      });
    });
  });

export const stopProcess = (proc: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      resolve();
      return;
    }
    const kill = setTimeout(() => proc.kill('SIGKILL'), 5000);
    proc.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    proc.kill('SIGTERM');
  });

/** The 1/5/15-minute load averages, as the benches print them (other work skews every row alike). */
export const loadAverage = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');

/** The median of a run's samples (the upper one of an even count). */
export const median = (xs: readonly number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

/**
 * Whether processes can be kept to one side of the machine each (`--by-side`): `taskset` (util-linux)
 * is on the PATH and the machine has at least two CPUs.
 */
export const canPin = (): boolean => {
  if (availableParallelism() < 2) return false;
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Keeps a running process, every thread of it, to the CPUs in `cpus` (taskset's list, e.g. "0"). */
export const pinProcess = (pid: number, cpus: string): void => {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
};

/**
 * The two sides of a `--by-side` run on a machine of N CPUs: the provider's (the sidecar and its
 * model server, as in one confidential VM) on the first half, the user's (the gateway and the load
 * generator) on the rest. Two CPUs: one each. `all`: every CPU (a process free to run anywhere).
 */
export const sides = (): { provider: string; user: string; all: string } => {
  const n = availableParallelism();
  const half = Math.max(1, Math.floor(n / 2));
  const list = (from: number, to: number) => (from === to ? String(from) : `${from}-${to}`);
  return { provider: list(0, half - 1), user: list(half, n - 1), all: list(0, n - 1) };
};

/** Whether `wrk` is on the PATH (it prints its version and exits 1; only a missing binary is ENOENT). */
export const hasWrk = (): boolean => {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return false;
  }
  return true;
};

/** A wrk script that POSTs `body` as JSON, written to a temporary file; returns its path. */
export const wrkPostScript = (body: string): string => {
  const script = join(tmpdir(), `teeml-wrk-${process.pid}.lua`);
  writeFileSync(
    script,
    `wrk.method = "POST"\nwrk.body = '${body}'\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  return script;
};
