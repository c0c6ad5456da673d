/**
 * `npx tsx bench/gateway-cpu.ts [--against <checkout>] [--against-env K=V,…] [--rounds N] [--seconds S]
 * [--connections C]`:
 * where the CPU goes when answers are verified through the gateway, process by process. Rows
 * alternate round by round (the sidecar alone, then gateway + sidecar, then with --against another
 * checkout's gateway in front of the same sidecar), autocannon with C connections (default 16) of
 * small JSON chats, and each row reads the CPU time of the stub, the sidecar and the gateway from
 * /proc. The load generator runs in this process; its CPU is what is left of the two cores. Medians
 * over rounds. Nothing here asserts a timing.
 */
import { resolve } from 'node:path';
import { abOptions, arg, SMALL_CHAT } from './args.js';
import { load } from './load.js';
import { type Child, cpuSeconds, loadAverage, median, startChild } from './proc.js';

const { against, againstEnv, againstLabel, rounds, seconds } = abOptions();
const connections = Number(arg('--connections') ?? '16');
const here = new URL('.', import.meta.url).pathname;

const body = SMALL_CHAT;
let seq = 0;
const path = () =>
  `/v1/chat/completions?case=small&id=chatcmpl-gwcpu${(seq++).toString(16).padStart(20, '0')}`;

const stub = await startChild(`${here}stub.ts`, {});
const sidecar = await startChild(`${here}sidecar-child.mjs`, { BENCH_UPSTREAM_PORT: String(stub.port) });
const gatewayEnv = { BENCH_PROVIDER_PORT: String(sidecar.port) };
const rows: Array<{ name: string; target: Child; gateway?: Child; headers?: Record<string, string> }> = [
  { name: 'sidecar alone', target: sidecar },
  // What the sidecar does for a gateway: the same answers, each with its signature in a trailer.
  {
    name: 'sidecar alone, signature trailer asked',
    target: sidecar,
    headers: { 'x-teeml-signature-trailer': 'ecdsa' },
  },
];
// The floor for any gateway in Node: node:http in, node:http out, nothing verified.
const relay = await startChild(`${here}node-proxy.ts`, { BENCH_UPSTREAM_PORT: String(sidecar.port) });
rows.push({ name: 'node pass-through + sidecar', target: relay, gateway: relay });
const gw = await startChild(`${here}gateway-child.mjs`, gatewayEnv);
rows.push({ name: 'gateway + sidecar (this)', target: gw, gateway: gw });
if (against !== undefined) {
  const other = await startChild(`${resolve(against)}/bench/gateway-child.mjs`, {
    ...gatewayEnv,
    ...againstEnv,
  });
  const label = againstLabel;
  rows.push({ name: `gateway + sidecar (${label})`, target: other, gateway: other });
}

interface Sample {
  rps: number;
  stub: number;
  sidecar: number;
  gateway: number;
  errors: number;
}
const samples = new Map<string, Sample[]>(rows.map((r) => [r.name, []]));

console.log(`load average at start: ${loadAverage()}`);
for (let round = 0; round < rounds + 1; round++) {
  for (const row of rows) {
    const before = [stub.pid, sidecar.pid, row.gateway?.pid].map((p) =>
      p === undefined ? 0 : cpuSeconds(p),
    );
    const r = await load({
      url: `http://127.0.0.1:${row.target.port}`,
      connections,
      duration: seconds,
      body,
      path,
      ...(row.headers === undefined ? {} : { headers: row.headers }),
    });
    const after = [stub.pid, sidecar.pid, row.gateway?.pid].map((p) => (p === undefined ? 0 : cpuSeconds(p)));
    const per = (i: number) => (((after[i] ?? 0) - (before[i] ?? 0)) * 1e6) / Math.max(1, r.ok);
    // Round 0 warms every process up (JIT, pools); it is not counted.
    if (round > 0)
      samples.get(row.name)?.push({
        rps: r.rps,
        stub: per(0),
        sidecar: per(1),
        gateway: per(2),
        errors: r.errors + r.non2xx,
      });
  }
}
console.log(`load average at the end: ${loadAverage()}`);
console.log();
console.log(
  `| row (${connections} connections, small JSON, median of ${rounds} × ${seconds} s) | req/s | vs alone | stub µs/req | sidecar µs/req | gateway µs/req | errors |`,
);
console.log('|---|---:|---:|---:|---:|---:|---:|');
const alone = median((samples.get('sidecar alone') ?? []).map((s) => s.rps));
for (const row of rows) {
  const s = samples.get(row.name) ?? [];
  const m = (k: keyof Sample) => median(s.map((x) => x[k]));
  console.log(
    `| ${row.name} | ${m('rps').toFixed(0)} | ${((100 * m('rps')) / alone).toFixed(0)}% | ${m('stub').toFixed(0)} | ${m('sidecar').toFixed(0)} | ${row.gateway === undefined ? '—' : m('gateway').toFixed(0)} | ${s.reduce((a, x) => a + x.errors, 0)} |`,
  );
}
for (const c of new Set([...rows.map((r) => r.gateway), sidecar, stub])) await c?.stop();
process.exit(0);
