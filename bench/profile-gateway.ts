import { execSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
/**
 * `npx tsx bench/profile-gateway.ts [small|stream]`: a V8 CPU profile of the gateway (from dist/, in
 * its own process, in front of a sidecar over the stub upstream) under 16 concurrent clients for
 * 6 s, written to .bench-out/, with the top self-time functions printed and the gateway's CPU per
 * verified answer. For finding where the gateway's time goes (issue 23 item 3).
 */
import { printTopSelfTime, profilesIn } from './cpuprofile.js';
import { load } from './load.js';
import { loadAverage, startChild } from './proc.js';

const kase = process.argv[2] ?? 'small';
const dir = new URL('../.bench-out/', import.meta.url).pathname;
// The profiles already there are listed before the child writes its own: the folder must exist.
mkdirSync(dir, { recursive: true });
const here = new URL('.', import.meta.url).pathname;
execSync('npm run build --silent', { stdio: 'inherit' });
const stub = await startChild(`${here}stub.ts`, {});
const sidecar = await startChild(`${here}sidecar-child.mjs`, { BENCH_UPSTREAM_PORT: String(stub.port) });
const gateway = await startChild(`${here}gateway-child.mjs`, { BENCH_PROVIDER_PORT: String(sidecar.port) }, [
  '--cpu-prof',
  `--cpu-prof-dir=${dir}`,
]);
const body = JSON.stringify({ model: 'bench-model', stream: kase === 'stream', messages: [] });
const url = `http://127.0.0.1:${gateway.port}/v1/chat/completions?case=${kase}&chunks=20`;
const r = await load({ url, connections: 16, duration: 6, body, pid: gateway.pid });
console.log(
  `${kase} through the gateway: ${Math.round(r.rps)} req/s, gateway ${Math.round(r.cpuUsPerReq)} µs CPU/answer, load ${loadAverage()}`,
);
const before = profilesIn(dir);
gateway.proc.disconnect();
await new Promise((resolve) => gateway.proc.once('exit', resolve));
sidecar.proc.disconnect();
await stub.stop();
printTopSelfTime(dir, before, 25);
process.exit(0);
