/**
 * `npm run bench:gateway [-- --quick]`: what the user-side gateway adds, gateway + sidecar against
 * the sidecar alone, over the same stub upstream (bench/stub.ts). Each server is its own process
 * (the sidecar and gateway from dist/). Rows:
 * - latency of one non-streaming request at a time (the gateway adds a GET /signature round trip
 *   and the hashing before it releases the answer);
 * - requests per second with 16 concurrent clients;
 * - one 500-chunk stream at a time: time to [DONE] and chunk throughput;
 * - the 16-client ratio: the gateway's verified answers per second against the sidecar alone's, from
 *   the rows, and as the median over rounds where the two alternate;
 * - the same ratio with wrk as the 16 clients (a C load generator that leaves the CPU to the servers),
 *   in two layouts that alternate round by round: every process free to run on any CPU ("shared"),
 *   and "by side": the provider's processes (sidecar and stub, as in one confidential VM) on the
 *   first half of the CPUs, the user's (gateway and wrk) on the rest, as a deployment has them on two
 *   machines. With each row, the gateway's and the sidecar's CPU per answer (from /proc). Skipped,
 *   saying why, without wrk or taskset;
 * - the wide-area rows (issue 23): a TCP delay proxy (bench/delay-proxy.ts) adds RTT/2 each way
 *   between the client and a sidecar serving attested TLS (`TLS_KEY_SOURCE=generate`), and a
 *   gateway pinned to that key sits on the client's side of it. p50 of N sequential requests, direct
 *   client → sidecar against through the gateway: JSON chat, stream first content, stream to [DONE].
 * `--rtt MS` (default 50), `--n N` (default 15), `--only loopback|sides|delay` (loopback includes sides).
 * Figures are printed and written to .bench-out/gateway.md. Nothing asserts a timing.
 */
import { execFileSync, execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { loadavg } from 'node:os';
import { arg, SMALL_CHAT } from './args.js';
import { startDelayProxy } from './delay-proxy.js';
import {
  type Child,
  canPin,
  cpuSeconds,
  hasWrk,
  median,
  pinProcess,
  sides,
  startChild,
  wrkPostScript,
} from './proc.js';

const quick = process.argv.includes('--quick');
const RTT_MS = Number(arg('--rtt') ?? '50');
const DELAY_N = Number(arg('--n') ?? '15');
const only = arg('--only');
const SEQ = quick ? 100 : 400;
const SECONDS = quick ? 2 : 6;
/** The alternating rounds the 16-client ratio is also taken over (see loopbackSection). */
const RATIO_ROUNDS = quick ? 3 : 8;
const RATIO_SECONDS = 2;
/** The rounds and their length for the shared / by-side ratio (see sidesSection). */
const SIDES_ROUNDS = quick ? 3 : 8;
const SIDES_SECONDS = 3;
const STREAMS = quick ? 10 : 30;
const CHUNKS = 500;
const here = new URL('.', import.meta.url).pathname;
const out: string[] = [];
const log = (line = ''): void => {
  out.push(line);
  console.log(line);
};

const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const SMALL = SMALL_CHAT;
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

const throughput = async (port: number, seconds = SECONDS) => {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  let verified = 0;
  let bad = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (performance.now() < end) {
        const r = await post(port, `case=small&id=${nextId()}`, SMALL);
        if (r.status === 200) done += 1;
        else bad += 1;
        if (r.status === 200 && r.verdict === 'verified') verified += 1;
      }
    }),
  );
  return { rps: done / seconds, verifiedPerS: verified / seconds, bad };
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

/** One request's times: first body byte that carries content, and the end of the answer. */
interface Timed {
  firstContentMs: number;
  endMs: number;
  ok: boolean;
}

const timedRequest = (
  send: typeof request | typeof httpsRequest,
  url: string,
  options: { agent: Agent | HttpsAgent; body: string },
): Promise<Timed> =>
  new Promise((resolve, reject) => {
    const t = performance.now();
    let firstContentMs = Number.NaN;
    const req = send(
      url,
      {
        method: 'POST',
        agent: options.agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(options.body) },
      },
      (res) => {
        res.on('data', (c: Buffer) => {
          if (Number.isNaN(firstContentMs) && c.includes('"content"')) firstContentMs = performance.now() - t;
        });
        res.on('end', () => {
          const verdict = String(
            res.trailers['x-teeml-verification'] ?? res.headers['x-teeml-verification'] ?? '',
          );
          resolve({
            firstContentMs,
            endMs: performance.now() - t,
            ok: res.statusCode === 200 && (verdict === '' || verdict === 'verified'),
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });

const p50Of = async (n: number, run: () => Promise<Timed>) => {
  for (let i = 0; i < 3; i++) await run();
  const first: number[] = [];
  const end: number[] = [];
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const r = await run();
    first.push(r.firstContentMs);
    end.push(r.endMs);
    if (!r.ok) bad += 1;
  }
  first.sort((a, b) => a - b);
  end.sort((a, b) => a - b);
  return { first: pct(first, 50), end: pct(end, 50), bad };
};

/** The wide-area rows: direct over the delay proxy against the gateway in front of it. */
const delaySection = async (stub: Child, children: Child[]): Promise<void> => {
  const sidecar = await startChild(`${here}sidecar-child.mjs`, {
    BENCH_UPSTREAM_PORT: String(stub.port),
    BENCH_TLS: '1',
  });
  children.push(sidecar);
  const proxy = await startDelayProxy(sidecar.port, RTT_MS);
  const provider = `https://127.0.0.1:${proxy.port}`;
  const gateway = await startChild(`${here}gateway-child.mjs`, { BENCH_PROVIDER_URL: provider });
  children.push(gateway);
  // The direct client keeps one connection (no handshake per request), as a real SDK does.
  const direct = new HttpsAgent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
  const local = new Agent({ keepAlive: true, maxSockets: 1 });
  const via = {
    direct: (q: string, body: string) =>
      timedRequest(httpsRequest, `${provider}/v1/chat/completions?${q}`, { agent: direct, body }),
    gateway: (q: string, body: string) =>
      timedRequest(request, `http://127.0.0.1:${gateway.port}/v1/chat/completions?${q}`, {
        agent: local,
        body,
      }),
  };
  try {
    const results: Record<string, { json: number; first: number; done: number; bad: number }> = {};
    for (const [name, run] of Object.entries(via)) {
      const json = await p50Of(DELAY_N, () => run(`case=small&id=${nextId()}`, SMALL));
      const stream = await p50Of(DELAY_N, () => run('case=stream&chunks=20', STREAM));
      results[name] = { json: json.end, first: stream.first, done: stream.end, bad: json.bad + stream.bad };
    }
    const d = results['direct'];
    const g = results['gateway'];
    if (d === undefined || g === undefined) return;
    log();
    log(
      `## ${RTT_MS} ms RTT (delay proxy, RTT/2 each way), attested TLS, p50 of ${DELAY_N} sequential requests`,
    );
    log();
    log('| | direct client → sidecar | through the gateway | added |');
    log('|---|---|---|---|');
    const row = (name: string, a: number, b: number) =>
      log(`| ${name} | ${f(a, 1)} ms | ${f(b, 1)} ms | ${b - a >= 0 ? '+' : ''}${f(b - a, 1)} ms |`);
    row('JSON chat', d.json, g.json);
    row('stream, first content', d.first, g.first);
    row('stream, to `[DONE]`', d.done, g.done);
    log();
    log(`errors or unverified answers: direct ${d.bad}, gateway ${g.bad}`);
  } finally {
    direct.destroy();
    local.destroy();
    await proxy.close();
  }
};

/** The loopback rows, and the 16-client ratio of verified answers to the sidecar alone. */
const loopbackSection = async (stub: Child, children: Child[]): Promise<void> => {
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
  log(
    `| row | latency p50 ms | p90 ms | p99 ms | mean ms | req/s (16 clients) | stream ${CHUNKS} chunks p50 ms | chunks/s | MB/s | errors |`,
  );
  log('|---|---|---|---|---|---|---|---|---|---|');
  const perSecond: number[] = [];
  for (const row of rows) {
    const l = await latency(row.port);
    const t = await throughput(row.port);
    const s = await streaming(row.port);
    perSecond.push(row.port === gateway.port ? t.verifiedPerS : t.rps);
    log(
      `| ${row.name} | ${f(l.p50)} | ${f(l.p90)} | ${f(l.p99)} | ${f(l.mean)} | ${f(t.rps, 0)} | ${f(s.p50, 1)} | ${f(s.chunksPerS, 0)} | ${f(s.mbPerS, 1)} | ${l.bad + t.bad + s.bad} |`,
    );
  }
  const [alone = Number.NaN, verified = Number.NaN] = perSecond;
  log();
  log(
    `16 clients, loopback: the gateway verified ${f(verified, 0)} answers/s, the sidecar alone served ${f(alone, 0)} (${f((100 * verified) / alone, 0)}%)`,
  );
  // The rows above run one after the other, minutes apart; on a shared machine whose speed drifts
  // that moves their ratio by tens of points. Here the two alternate in short rounds, each ratio
  // taken from one round's pair, and the median of those is the figure to compare.
  const ratios: number[] = [];
  for (let round = 0; round < RATIO_ROUNDS; round++) {
    const a = await throughput(sidecar.port, RATIO_SECONDS);
    const g = await throughput(gateway.port, RATIO_SECONDS);
    ratios.push(g.verifiedPerS / a.rps);
  }
  const sorted = [...ratios].sort((x, y) => x - y);
  log(
    `16 clients, loopback, ${RATIO_ROUNDS} alternating rounds of ${RATIO_SECONDS} s: verified / alone, median ${f(100 * median(ratios), 0)}% (range ${f(100 * (sorted[0] ?? Number.NaN), 0)}–${f(100 * (sorted.at(-1) ?? Number.NaN), 0)}%)`,
  );
  const stats = await gateway.ask<Record<string, unknown>>({ cmd: 'stats' });
  log();
  log(`gateway counters after the run: ${JSON.stringify(stats)}`);
};

/**
 * The 16-client ratio with wrk, "shared" and "by side" alternating round by round (see the header).
 * Verified answers are counted by the gateway itself (its counters), so wrk needs no script for it.
 */
const sidesSection = async (stub: Child, children: Child[]): Promise<void> => {
  if (!hasWrk()) {
    log('wrk is not installed (apt-get install wrk): the shared / by-side ratio is not measured');
    return;
  }
  if (!canPin()) {
    log('taskset is missing or the machine has one CPU: the shared / by-side ratio is not measured');
    return;
  }
  const script = wrkPostScript(SMALL);
  const sidecar = await startChild(`${here}sidecar-child.mjs`, { BENCH_UPSTREAM_PORT: String(stub.port) });
  children.push(sidecar);
  const gateway = await startChild(`${here}gateway-child.mjs`, {
    BENCH_PROVIDER_PORT: String(sidecar.port),
  });
  children.push(gateway);
  const { provider, user, all } = sides();
  const layouts = [
    { name: 'shared', provider: all, user: all },
    { name: 'by side', provider, user },
  ];
  const verifiedSoFar = async () => (await gateway.ask<{ verified: number }>({ cmd: 'stats' })).verified;
  const wrk = (cpus: string, port: number): number => {
    const text = execFileSync('taskset', [
      '-c',
      cpus,
      'wrk',
      '-t1',
      '-c16',
      `-d${SIDES_SECONDS}s`,
      '-s',
      script,
      `http://127.0.0.1:${port}/v1/chat/completions`,
    ]).toString();
    return Number(/(\d+) requests in/.exec(text)?.[1] ?? Number.NaN);
  };
  const samples = new Map(
    layouts.map((l) => [
      l.name,
      [] as Array<{ alone: number; verified: number; gatewayUs: number; sidecarUs: number }>,
    ]),
  );
  for (let round = 0; round <= SIDES_ROUNDS; round++) {
    for (const layout of layouts) {
      pinProcess(stub.pid, layout.provider);
      pinProcess(sidecar.pid, layout.provider);
      pinProcess(gateway.pid, layout.user);
      const alone = wrk(layout.user, sidecar.port) / SIDES_SECONDS;
      const v0 = await verifiedSoFar();
      const cpu0 = [cpuSeconds(gateway.pid), cpuSeconds(sidecar.pid)];
      wrk(layout.user, gateway.port);
      const verified = (await verifiedSoFar()) - v0;
      const per = (i: number, pid: number) => ((cpuSeconds(pid) - (cpu0[i] ?? 0)) * 1e6) / verified;
      // Round 0 warms every process up in both layouts; it is not counted.
      if (round > 0)
        samples.get(layout.name)?.push({
          alone,
          verified: verified / SIDES_SECONDS,
          gatewayUs: per(0, gateway.pid),
          sidecarUs: per(1, sidecar.pid),
        });
    }
  }
  log();
  log(
    `| 16 clients (wrk -t1 -c16), ${SIDES_ROUNDS} alternating rounds of ${SIDES_SECONDS} s | sidecar alone req/s | gateway verified/s | verified / alone, median (range) | gateway CPU µs/answer | sidecar CPU µs/answer |`,
  );
  log('|---|---:|---:|---:|---:|---:|');
  for (const layout of layouts) {
    const s = samples.get(layout.name) ?? [];
    const ratios = s.map((x) => x.verified / x.alone).sort((a, b) => a - b);
    const m = (k: 'alone' | 'verified' | 'gatewayUs' | 'sidecarUs') => median(s.map((x) => x[k]));
    const where =
      layout.name === 'shared'
        ? 'shared: any process on any CPU'
        : `by side: sidecar + stub on CPU ${layout.provider}, gateway + wrk on CPU ${layout.user}`;
    log(
      `| ${where} | ${f(m('alone'), 0)} | ${f(m('verified'), 0)} | ${f(100 * median(ratios), 0)}% (${f(100 * (ratios[0] ?? Number.NaN), 0)}–${f(100 * (ratios.at(-1) ?? Number.NaN), 0)}%) | ${f(m('gatewayUs'), 0)} | ${f(m('sidecarUs'), 0)} |`,
    );
  }
  for (const child of [stub, sidecar, gateway]) pinProcess(child.pid, all);
};

const main = async (): Promise<void> => {
  execSync('npm run build --silent', { stdio: 'inherit' });
  const children: Child[] = [];
  try {
    const stub = await startChild(`${here}stub.ts`, {});
    children.push(stub);
    log(`# Gateway overhead (${new Date().toISOString()}${quick ? ', --quick' : ''})`);
    log();
    log(
      `load average at start: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' / ')}; loopback; stub upstream`,
    );
    log();
    if (only === undefined || only === 'loopback') await loopbackSection(stub, children);
    if (only === undefined || only === 'loopback' || only === 'sides') await sidesSection(stub, children);
    if (only === undefined || only === 'delay') await delaySection(stub, children);
    log();
    log(
      `load average at the end: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' / ')}`,
    );
  } finally {
    for (const c of children.reverse()) await c.stop();
    agent.destroy();
  }
  mkdirSync('.bench-out', { recursive: true });
  writeFileSync('.bench-out/gateway.md', `${out.join('\n')}\n`);
};

await main();
