/**
 * `npx tsx bench/cpu.ts [--against <checkout>] [--rounds N] [--seconds S] [--cases small,large,stream,bigreq,single]`: CPU µs per request of
 * the sidecar for one change, A/B in one invocation. On a shared machine absolute figures move by
 * tens of percent between runs; here the rows alternate round by round (stub, node pass-through, this
 * checkout's sidecar, and with --against another checkout's sidecar built from its own dist/), so
 * each round's rows see the same load, and the median over rounds is reported. bench/run.ts is the
 * full picture; this is for measuring one change before keeping it. Nothing here asserts a timing.
 */
import { execSync } from 'node:child_process';
import { resolve } from 'node:path';
import { load } from './load.js';
import { type Child, startChild } from './proc.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
};
const against = arg('--against');
const rounds = Number(arg('--rounds') ?? '3');
const seconds = Number(arg('--seconds') ?? '3');
const only = arg('--cases')?.split(',');
/** `KEY=VALUE,…` for the --against sidecar only (e.g. `--against . --against-env BENCH_LOG_LEVEL=warn`). */
const againstEnv = Object.fromEntries(
  (arg('--against-env') ?? '')
    .split(',')
    .filter((kv) => kv.includes('='))
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const here = new URL('.', import.meta.url).pathname;

execSync('npm run build --silent', { stdio: 'inherit' });
if (against !== undefined) execSync('npm run build --silent', { stdio: 'inherit', cwd: resolve(against) });

const body = JSON.stringify({
  model: 'bench-model',
  messages: [{ role: 'user', content: 'Say something short.' }],
});
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
    `sidecar (${[against, arg('--against-env')].filter((x) => x !== undefined).join(' ')})`,
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
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
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
