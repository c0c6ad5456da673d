import { execSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { printTopSelfTime, profilesIn } from './cpuprofile.js';
/**
 * `npx tsx bench/profile.ts [small|large|stream] [--trailer]`: a V8 CPU profile of the sidecar under one
 * case (written to .bench-out/), with the top self-time functions printed. For finding what to fix.
 * `--trailer` asks for each answer's signature in a trailer, as the gateway does.
 */
import { load } from './load.js';
import { startChild } from './proc.js';

const kase = process.argv[2] ?? 'small';
const dir = new URL('../.bench-out/', import.meta.url).pathname;
// The profiles already there are listed before the child writes its own: the folder must exist.
mkdirSync(dir, { recursive: true });
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
const before = profilesIn(dir);
sidecar.proc.disconnect();
await new Promise((resolve) => sidecar.proc.once('exit', resolve));
await stub.stop();
printTopSelfTime(dir, before, 30);
process.exit(0);
