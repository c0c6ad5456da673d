/**
 * `npx tsx bench/wrk.ts [--against <checkout>] [--against-env K=V,…] [--rounds N] [--seconds S]`:
 * the sidecar's small-answer path against the
 * minimal Node pass-through with wrk (`wrk -t1 -c32`, a C load generator that leaves the CPU to the
 * servers, unlike autocannon), as issue 23 measured it. Rows alternate round by round over one stub
 * upstream; req/s and server CPU µs per request (from /proc), medians over rounds. `--against` adds
 * another checkout's sidecar (or this one's with `--against-env`) as a third row. Needs `wrk` on the
 * PATH (Debian: `apt-get install wrk`); says so and exits otherwise. Nothing here asserts a timing.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { abOptions, SMALL_CHAT } from './args.js';
import {
  canPin,
  cpuSeconds,
  hasWrk,
  loadAverage,
  median,
  pinProcess,
  startChild,
  wrkPostScript,
} from './proc.js';

if (!hasWrk()) {
  console.log('wrk is not installed (apt-get install wrk): nothing measured');
  process.exit(0);
}
const { against, againstEnv, againstLabel, rounds, seconds } = abOptions({ seconds: 4 });
// --pin: each server on CPU 0, the stub and wrk on CPU 1, so that the row measures the server's own
// path, not which process the scheduler put beside it.
const pin = process.argv.includes('--pin');
if (pin && !canPin()) {
  console.log('--pin needs taskset and two CPUs: nothing measured');
  process.exit(0);
}
const here = new URL('.', import.meta.url).pathname;

const script = wrkPostScript(SMALL_CHAT);
const stub = await startChild(`${here}stub.ts`, {});
const env = { BENCH_UPSTREAM_PORT: String(stub.port) };
const rows = [
  { name: 'node pass-through', child: await startChild(`${here}node-proxy.ts`, env) },
  { name: 'sidecar', child: await startChild(`${here}sidecar-child.mjs`, env) },
];
if (against !== undefined)
  rows.push({
    name: `sidecar (${againstLabel})`,
    child: await startChild(`${resolve(against)}/bench/sidecar-child.mjs`, { ...env, ...againstEnv }),
  });
if (pin) {
  pinProcess(stub.pid, '1');
  for (const { child } of rows) pinProcess(child.pid, '0');
}
const samples = new Map<string, Array<{ rps: number; cpu: number; bad: number }>>(
  rows.map((r) => [r.name, []]),
);

console.log(`load average at start: ${loadAverage()}`);
for (let round = 0; round < rounds + 1; round++) {
  for (const { name, child } of rows) {
    const cpu0 = cpuSeconds(child.pid);
    const out = execFileSync(pin ? 'taskset' : 'wrk', [
      ...(pin ? ['-c', '1', 'wrk'] : []),
      '-t1',
      '-c32',
      `-d${seconds}s`,
      '-s',
      script,
      `http://127.0.0.1:${child.port}/v1/chat/completions`,
    ]).toString();
    const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? Number.NaN);
    const bad = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? '0');
    // Round 0 warms every process up; it is not counted.
    if (round > 0)
      samples.get(name)?.push({
        rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN),
        cpu: ((cpuSeconds(child.pid) - cpu0) * 1e6) / requests,
        bad,
      });
  }
}
console.log(`load average at the end: ${loadAverage()}`);
console.log();
console.log(
  `| row (wrk -t1 -c32, small JSON, median of ${rounds} × ${seconds} s) | req/s | vs pass-through | server CPU µs/req | non-2xx |`,
);
console.log('|---|---:|---:|---:|---:|');
const base = median((samples.get('node pass-through') ?? []).map((s) => s.rps));
for (const { name } of rows) {
  const s = samples.get(name) ?? [];
  const rps = median(s.map((x) => x.rps));
  console.log(
    `| ${name} | ${rps.toFixed(0)} | ${((100 * rps) / base).toFixed(0)}% | ${median(s.map((x) => x.cpu)).toFixed(0)} | ${s.reduce((a, x) => a + x.bad, 0)} |`,
  );
}
for (const { child } of rows) await child.stop();
await stub.stop();
process.exit(0);
