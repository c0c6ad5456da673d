/**
 * `npx tsx bench/cpu.ts [--against <checkout>] [--rounds N] [--seconds S] [--cases small,large,stream,bigreq,single]`: CPU µs per request of
 * the sidecar for one change, A/B in one invocation. On a shared machine absolute figures move by
 * tens of percent between runs; here the rows alternate round by round (stub, node pass-through, this
 * checkout's sidecar, and with --against another checkout's sidecar built from its own dist/), so
 * each round's rows see the same load, and the median over rounds is reported. bench/run.ts is the
 * full picture; this is for measuring one change before keeping it. Nothing here asserts a timing.
 */
import { resolve } from 'node:path';
import { abOptions, arg, SMALL_CHAT } from './args.js';
import { load } from './load.js';
import { type Child, median, startChild } from './proc.js';

const { against, againstEnv, againstLabel, rounds, seconds } = abOptions();
const only = arg('--cases')?.split(',');
const here = new URL('.', import.meta.url).pathname;

const body = SMALL_CHAT;
/** A 100 KB prompt (a long context), answered with the small completion. */
const bigRequest = JSON.stringify({
  model: 'bench-model',
  messages: [{ role: 'user', content: 'Summarize this. '.repeat(6400) }],
});
const streamBody = JSON.stringify({ model: 'bench-model', stream: true, messages: [] });
const stub = await startChild(`${here}stub.ts`, {});
const env = { BENCH_UPSTREAM_PORT: String(stub.port) };
const rows: Array<[string, Child]> = [
  ['node pass-through', await startChild(`${here}node-proxy.ts`, env)],
  ['sidecar (this)', await startChild(`${here}sidecar-child.mjs`, env)],
];
if (against !== undefined) {
  rows.push([
    `sidecar (${againstLabel})`,
    await startChild(`${resolve(against)}/bench/sidecar-child.mjs`, { ...env, ...againstEnv }),
  ]);
}
const cases = [
  { key: 'small', name: 'small, 32 conn', q: 'case=small', c: 32, b: body, unit: 1 },
  { key: 'large', name: 'large 100 KB, 32 conn', q: 'case=large', c: 32, b: body, unit: 1 },
  {
    key: 'stream',
    name: 'stream 500 chunks, 32 conn',
    q: 'case=stream&chunks=500',
    c: 32,
    b: streamBody,
    unit: 500,
  },
  {
    key: 'bigreq',
    name: '100 KB request, small answer, 32 conn',
    q: 'case=small',
    c: 32,
    b: bigRequest,
    unit: 1,
  },
  { key: 'single', name: 'small, 1 conn', q: 'case=small', c: 1, b: body, unit: 1 },
];
console.log(
  `| case | target | req/s (median) | vs pass-through | CPU µs/req (median) | CPU µs/req per round |`,
);
console.log('|---|---|---:|---:|---:|---|');
for (const k of cases.filter((c) => only === undefined || only.includes(c.key))) {
  const results = new Map<string, { rps: number[]; cpu: number[] }>();
  for (const [name, child] of rows) {
    // Warm-up: JIT and connection pools, not counted.
    await load({
      url: `http://127.0.0.1:${child.port}/v1/chat/completions?${k.q}`,
      connections: k.c,
      duration: 1,
      body: k.b,
    });
    results.set(name, { rps: [], cpu: [] });
  }
  for (let r = 0; r < rounds; r++) {
    for (const [name, child] of r % 2 === 0 ? rows : [...rows].reverse()) {
      const res = await load({
        url: `http://127.0.0.1:${child.port}/v1/chat/completions?${k.q}`,
        connections: k.c,
        duration: seconds,
        body: k.b,
        pid: child.pid,
      });
      if (res.errors + res.non2xx > 0)
        console.error(`${name} ${k.name}: ${res.errors} errors, ${res.non2xx} non-2xx`);
      results.get(name)?.rps.push(res.rps);
      results.get(name)?.cpu.push(res.cpuUsPerReq);
    }
  }
  const base = median(results.get('node pass-through')?.rps ?? []);
  for (const [name, r] of results) {
    const rps = median(r.rps);
    console.log(
      `| ${k.name} | ${name} | ${Math.round(rps * k.unit).toLocaleString('en-US')}${k.unit > 1 ? ' chunks/s' : ''} | ${Math.round((rps / base) * 100)}% | ${Math.round(median(r.cpu))} | ${r.cpu.map((c) => Math.round(c)).join(', ')} |`,
    );
  }
}
for (const [, child] of rows) await child.stop();
await stub.stop();
process.exit(0);
