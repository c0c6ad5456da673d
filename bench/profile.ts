import { execSync } from 'node:child_process';
/**
 * `npx tsx bench/profile.ts [small|large|stream] [--trailer]`: a V8 CPU profile of the sidecar under one
 * case (written to .bench-out/), with the top self-time functions printed. For finding what to fix.
 * `--trailer` asks for each answer's signature in a trailer, as the gateway does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { load } from './load.js';
import { startChild } from './proc.js';

const kase = process.argv[2] ?? 'small';
const dir = new URL('../.bench-out/', import.meta.url).pathname;
const here = new URL('.', import.meta.url).pathname;
execSync('npm run build --silent', { stdio: 'inherit' });
const stub = await startChild(`${here}stub.ts`, {});
const sidecar = await startChild(`${here}sidecar-child.mjs`, { BENCH_UPSTREAM_PORT: String(stub.port) }, [
  '--cpu-prof',
  `--cpu-prof-dir=${dir}`,
]);
const body = JSON.stringify({ model: 'm', stream: kase === 'stream', messages: [] });
const url = `http://127.0.0.1:${sidecar.port}/v1/chat/completions?case=${kase}&chunks=500`;
const trailer = process.argv.includes('--trailer');
const r = await load({
  url,
  connections: 32,
  duration: 6,
  body,
  pid: sidecar.pid,
  ...(trailer ? { headers: { 'x-teeml-signature-trailer': 'ecdsa' } } : {}),
});
console.log(`${kase}: ${Math.round(r.rps)} req/s, ${Math.round(r.cpuUsPerReq)} µs CPU/req`);
const before = new Set(readdirSync(dir));
sidecar.proc.disconnect();
await new Promise((resolve) => sidecar.proc.once('exit', resolve));
await stub.stop();
const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile') && !before.has(f));
if (file !== undefined) {
  const prof = JSON.parse(readFileSync(`${dir}${file}`, 'utf8')) as {
    nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
    samples: number[];
  };
  const counts = new Map<number, number>();
  for (const s of prof.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
  const byFn = new Map<string, number>();
  for (const n of prof.nodes) {
    const c = counts.get(n.id) ?? 0;
    const where = n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/main\//, '');
    const key = `${n.callFrame.functionName || '(anon)'} ${where}:${n.callFrame.lineNumber}`;
    byFn.set(key, (byFn.get(key) ?? 0) + c);
  }
  const total = prof.samples.length;
  for (const [k, c] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    console.log(`${((c / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
  }
}
process.exit(0);
