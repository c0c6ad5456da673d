/**
 * `npm run bench:gateway [-- --quick]`: what the user-side gateway adds, gateway + sidecar against
 * the sidecar alone, over the same stub upstream (bench/stub.ts). Each server is its own process
 * (the sidecar and gateway from dist/). Rows:
 * - latency of one non-streaming request at a time (the gateway adds a GET /signature round trip
 *   and the hashing before it releases the answer);
 * - requests per second with 16 concurrent clients;
 * - one 500-chunk stream at a time: time to [DONE] and chunk throughput.
 * Figures are printed and written to .bench-out/gateway.md. Nothing asserts a timing.
 */
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { loadavg } from 'node:os';
import { type Child, startChild } from './proc.js';

const quick = process.argv.includes('--quick');
const SEQ = quick ? 100 : 400;
const SECONDS = quick ? 2 : 6;
const STREAMS = quick ? 10 : 30;
const CHUNKS = 500;
const here = new URL('.', import.meta.url).pathname;
const out: string[] = [];
const log = (line = ''): void => {
  out.push(line);
  console.log(line);
};

const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const SMALL = JSON.stringify({
  model: 'bench-model',
  messages: [{ role: 'user', content: 'Say something short.' }],
});
const STREAM = JSON.stringify({
  model: 'bench-model',
  stream: true,
  messages: [{ role: 'user', content: 'Long.' }],
});
let seq = 0;
const nextId = () => `chatcmpl-bench${(seq++).toString(16).padStart(20, '0')}`;

const post = (
  port: number,
  query: string,
  body: string,
): Promise<{ status: number; bytes: number; verdict: string }> =>
  new Promise((resolve, reject) => {
    const req = request(
      `http://127.0.0.1:${port}/v1/chat/completions?${query}`,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            bytes,
            verdict: String(
              res.trailers['x-teeml-verification'] ?? res.headers['x-teeml-verification'] ?? '',
            ),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });

const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
const f = (n: number, d = 2): string => n.toFixed(d);

const latency = async (port: number) => {
  for (let i = 0; i < 30; i++) await post(port, `case=small&id=${nextId()}`, SMALL);
  const times: number[] = [];
  let bad = 0;
  for (let i = 0; i < SEQ; i++) {
    const t = performance.now();
    const r = await post(port, `case=small&id=${nextId()}`, SMALL);
    times.push(performance.now() - t);
    if (r.status !== 200) bad += 1;
  }
  times.sort((a, b) => a - b);
  return {
    p50: pct(times, 50),
    p90: pct(times, 90),
    p99: pct(times, 99),
    mean: times.reduce((a, b) => a + b, 0) / times.length,
    bad,
  };
};

const throughput = async (port: number) => {
  const end = performance.now() + SECONDS * 1000;
  let done = 0;
  let bad = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (performance.now() < end) {
        const r = await post(port, `case=small&id=${nextId()}`, SMALL);
        if (r.status === 200) done += 1;
        else bad += 1;
      }
    }),
  );
  return { rps: done / SECONDS, bad };
};

const streaming = async (port: number) => {
  await post(port, `case=stream&chunks=${CHUNKS}`, STREAM);
  const times: number[] = [];
  let bytes = 0;
  let bad = 0;
  for (let i = 0; i < STREAMS; i++) {
    const t = performance.now();
    const r = await post(port, `case=stream&chunks=${CHUNKS}`, STREAM);
    times.push(performance.now() - t);
    bytes += r.bytes;
    if (r.status !== 200 || (r.verdict !== '' && r.verdict !== 'verified')) bad += 1;
  }
  const total = times.reduce((a, b) => a + b, 0) / 1000;
  times.sort((a, b) => a - b);
  return {
    p50: pct(times, 50),
    chunksPerS: (STREAMS * CHUNKS) / total,
    mbPerS: bytes / total / 1024 / 1024,
    bad,
  };
};

const main = async (): Promise<void> => {
  execSync('npm run build --silent', { stdio: 'inherit' });
  const children: Child[] = [];
  try {
    const stub = await startChild(`${here}stub.ts`, {});
    children.push(stub);
    const sidecar = await startChild(`${here}sidecar-child.mjs`, { BENCH_UPSTREAM_PORT: String(stub.port) });
    children.push(sidecar);
    const gateway = await startChild(`${here}gateway-child.mjs`, {
      BENCH_PROVIDER_PORT: String(sidecar.port),
    });
    children.push(gateway);
    const rows = [
      { name: 'sidecar alone', port: sidecar.port },
      { name: 'gateway + sidecar', port: gateway.port },
    ];
    log(`# Gateway overhead (${new Date().toISOString()}${quick ? ', --quick' : ''})`);
    log();
    log(
      `load average at start: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' / ')}; loopback; stub upstream`,
    );
    log();
    log(
      `| row | latency p50 ms | p90 ms | p99 ms | mean ms | req/s (16 clients) | stream ${CHUNKS} chunks p50 ms | chunks/s | MB/s | errors |`,
    );
    log('|---|---|---|---|---|---|---|---|---|---|');
    for (const row of rows) {
      const l = await latency(row.port);
      const t = await throughput(row.port);
      const s = await streaming(row.port);
      log(
        `| ${row.name} | ${f(l.p50)} | ${f(l.p90)} | ${f(l.p99)} | ${f(l.mean)} | ${f(t.rps, 0)} | ${f(s.p50, 1)} | ${f(s.chunksPerS, 0)} | ${f(s.mbPerS, 1)} | ${l.bad + t.bad + s.bad} |`,
      );
    }
    const stats = await gateway.ask<Record<string, unknown>>({ cmd: 'stats' });
    log();
    log(`gateway counters after the run: ${JSON.stringify(stats)}`);
  } finally {
    for (const c of children.reverse()) await c.stop();
    agent.destroy();
  }
  mkdirSync('.bench-out', { recursive: true });
  writeFileSync('.bench-out/gateway.md', `${out.join('\n')}\n`);
};

await main();
