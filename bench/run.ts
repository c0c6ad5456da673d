/**
 * `npm run bench [-- --quick]`: what the sidecar costs a provider, side by side with a plain proxy.
 *
 * Every row runs in this one invocation against the same stub upstream (bench/stub.ts): direct to the
 * stub, nginx (when installed), a minimal Node pass-through (bench/node-proxy.ts) and the sidecar
 * (bench/sidecar-child.mjs). Each server is its own process; autocannon runs in this one. The
 * figures are printed and written to .bench-out/latest.md (BENCHMARKS.md is written from them).
 * Not part of `npm test`; nothing here asserts a timing.
 */
import { execSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, totalmem } from 'node:os';
import { e2eeRequests, runE2eeCrypto } from './e2ee.js';
import { type LoadResult, load } from './load.js';
import { findNginx, nginxVersion, startNginx } from './nginx.js';
import { type Child, rssBytes, startChild } from './proc.js';
import { runSigning } from './signing.js';

const quick = process.argv.includes('--quick');
const D = quick ? 2 : 6; // seconds per throughput run
const WARM = quick ? 0.5 : 1;
const STREAM_CHUNKS = 500;
const HELD_STREAMS = 1000;
const HELD_CHUNKS = quick ? 20 : 50;
const HELD_EVERY_MS = 100;
const FILL = quick ? 20_000 : 100_000;
const LATENCY_RATE = 500; // req/s over 32 connections: below every row's capacity

const here = new URL('.', import.meta.url).pathname;
const out: string[] = [];
const log = (line = ''): void => {
  out.push(line);
  console.log(line);
};

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

interface Target {
  name: string;
  port: number;
  pid: number;
  /** https: the sidecar terminating TLS itself (autocannon does not check the certificate). */
  scheme?: 'http' | 'https';
}

const originOf = (t: Target): string => `${t.scheme ?? 'http'}://127.0.0.1:${t.port}`;

const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '—';
const mb = (bytes: number): string => fmt(bytes / 1024 / 1024, 1);

const SMALL_BODY = JSON.stringify({
  model: 'bench-model',
  messages: [{ role: 'user', content: 'Say something short.' }],
});
const STREAM_BODY = JSON.stringify({
  model: 'bench-model',
  stream: true,
  messages: [{ role: 'user', content: 'Say something long.' }],
});

const machine = (): string[] => {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  let nproc = String(cpus().length);
  try {
    nproc = execSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    // keep os.cpus()
  }
  return [
    `- load average at start (1/5/15 min): ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')} — other work on the machine skews every row alike`,
    `- nproc: ${nproc}; CPU: ${model}`,
    `- memory: ${fmt(totalmem() / 1024 ** 3, 1)} GiB`,
    `- node ${process.version}; kernel ${execSync('uname -r', { encoding: 'utf8' }).trim()}`,
  ];
};

const main = async (): Promise<void> => {
  const started = Date.now();
  log(`# bench run ${new Date().toISOString()}${quick ? ' (--quick)' : ''}`);
  log('');
  log(`command: \`npm run bench${quick ? ' -- --quick' : ''}\``);
  log('');
  for (const l of machine()) log(l);
  // The sidecar runs from dist/, as in production: build it first.
  execSync('npm run build --silent', { stdio: 'inherit' });

  const stub = await startChild(`${here}stub.ts`, {});
  const upstream = { BENCH_UPSTREAM_PORT: String(stub.port) };
  const nodeProxy = await startChild(`${here}node-proxy.ts`, upstream);
  const sidecar = await startChild(`${here}sidecar-child.mjs`, upstream);
  const sidecarTls = await startChild(`${here}sidecar-child.mjs`, { ...upstream, BENCH_TLS: '1' });
  const nginxBin = findNginx();
  const nginx = nginxBin === undefined ? undefined : await startNginx(nginxBin, stub.port, await freePort());
  log(`- nginx: ${nginxBin === undefined ? 'not installed — row skipped' : nginxVersion(nginxBin)}`);
  log('');
  const children: Array<{ stop(): Promise<void> }> = [stub, nodeProxy, sidecar, sidecarTls];
  if (nginx !== undefined) children.push(nginx);

  const targets: Target[] = [
    { name: 'direct (stub)', port: stub.port, pid: stub.pid },
    ...(nginx === undefined ? [] : [{ name: 'nginx', port: nginx.port, pid: nginx.pid }]),
    { name: 'node pass-through', port: nodeProxy.port, pid: nodeProxy.pid },
    { name: 'sidecar', port: sidecar.port, pid: sidecar.pid },
    { name: 'sidecar (https)', port: sidecarTls.port, pid: sidecarTls.pid, scheme: 'https' },
  ];
  const eld = async (
    fn: () => Promise<LoadResult>,
  ): Promise<LoadResult & { eldP99: number; eldMax: number }> => {
    await sidecar.ask({ cmd: 'reset' });
    const r = await fn();
    const s = await sidecar.ask<{ eldP99Ms: number; eldMaxMs: number }>({ cmd: 'stats' });
    return { ...r, eldP99: s.eldP99Ms, eldMax: s.eldMaxMs };
  };

  // --- Throughput cases: every target, 32 connections, closed loop. --------------------------------
  const cases = [
    {
      key: 'small',
      title: 'Small JSON completion (~400 B), 32 connections',
      path: '/v1/chat/completions?case=small',
      body: SMALL_BODY,
      unit: 1,
    },
    {
      key: 'large',
      title: 'Large JSON completion (100 KB), 32 connections',
      path: '/v1/chat/completions?case=large',
      body: SMALL_BODY,
      unit: 1,
    },
    {
      key: 'stream',
      title: `SSE stream of ${STREAM_CHUNKS} chunks, 32 connections`,
      path: `/v1/chat/completions?case=stream&chunks=${STREAM_CHUNKS}`,
      body: STREAM_BODY,
      unit: STREAM_CHUNKS,
    },
  ];
  const results = new Map<string, Map<string, LoadResult & { eldP99?: number; eldMax?: number }>>();
  for (const c of cases) {
    const byTarget = new Map<string, LoadResult & { eldP99?: number; eldMax?: number }>();
    results.set(c.key, byTarget);
    for (const t of targets) {
      const url = `${originOf(t)}${c.path}`;
      await load({ url, connections: 32, duration: WARM, body: c.body });
      const run = () => load({ url, connections: 32, duration: D, body: c.body, pid: t.pid });
      byTarget.set(t.name, t.name === 'sidecar' ? await eld(run) : await run());
    }
    const direct = byTarget.get('direct (stub)') as LoadResult;
    const node = byTarget.get('node pass-through') as LoadResult;
    log(`## ${c.title}`);
    log('');
    log(
      `| target | req/s | ${c.unit > 1 ? 'chunks/s | ' : ''}vs node pass-through | p50 ms | p99 ms | p50 added over direct ms | server CPU µs/req | errors |`,
    );
    log(`|---|---:|${c.unit > 1 ? '---:|' : ''}---:|---:|---:|---:|---:|---:|`);
    for (const [name, r] of byTarget) {
      log(
        `| ${name} | ${fmt(r.rps)} | ${c.unit > 1 ? `${fmt(r.rps * c.unit)} | ` : ''}${fmt((r.rps / node.rps) * 100)}% | ${fmt(r.p50Us / 1000, 2)} | ${fmt(r.p99Us / 1000, 2)} | ${name === 'direct (stub)' ? '—' : fmt((r.p50Us - direct.p50Us) / 1000, 2)} | ${fmt(r.cpuUsPerReq)} | ${r.errors + r.non2xx} |`,
      );
    }
    const sc = byTarget.get('sidecar');
    if (sc?.eldP99 !== undefined) {
      log('');
      log(
        `Sidecar event-loop delay during the run: p99 ${fmt(sc.eldP99, 2)} ms, max ${fmt(sc.eldMax ?? Number.NaN, 2)} ms.`,
      );
    }
    log('');
  }

  // --- End-to-end encryption: the same sidecar, plain against E2EE requests. -----------------------
  log('## End-to-end encryption (NEAR AI protocol): sidecar, plain vs E2EE, 32 connections');
  log('');
  log('E2EE rows send the prompt sealed to the sidecar key (decrypted per request) and get every');
  log('content field back sealed to the client key: one JSON field per small completion, one per');
  log('SSE chunk. "added" is the sidecar CPU over the plain row, per request or per chunk.');
  log('');
  log(
    '| request | req/s | chunks/s | p50 ms | p99 ms | sidecar CPU µs/req | CPU µs/chunk | added CPU µs per req / per chunk | errors |',
  );
  log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  const e2ee = await e2eeRequests(sidecar.port, SMALL_BODY, STREAM_BODY);
  for (const kind of ['small', 'stream'] as const) {
    const unit = kind === 'stream' ? STREAM_CHUNKS : 1;
    const path =
      kind === 'stream'
        ? `/v1/chat/completions?case=stream&chunks=${STREAM_CHUNKS}`
        : '/v1/chat/completions?case=small';
    let plainCpu = Number.NaN;
    for (const variant of e2ee) {
      const url = `http://127.0.0.1:${sidecar.port}${path}`;
      const spec = { url, connections: 32, body: variant[kind], headers: variant.headers };
      await load({ ...spec, duration: WARM });
      const r = await load({ ...spec, duration: D, pid: sidecar.pid });
      if (variant.name === 'plain') plainCpu = r.cpuUsPerReq;
      const added =
        variant.name === 'plain'
          ? '—'
          : `${fmt(r.cpuUsPerReq - plainCpu)} / ${fmt((r.cpuUsPerReq - plainCpu) / unit, 1)}`;
      log(
        `| ${kind === 'stream' ? `SSE ${STREAM_CHUNKS} chunks` : 'small JSON'}, ${variant.name} | ${fmt(r.rps)} | ${fmt(r.rps * unit)} | ${fmt(r.p50Us / 1000, 2)} | ${fmt(r.p99Us / 1000, 2)} | ${fmt(r.cpuUsPerReq)} | ${fmt(r.cpuUsPerReq / unit, 1)} | ${added} | ${r.errors + r.non2xx} |`,
      );
    }
  }
  log('');

  // --- Latency at a fixed rate: 32 connections, well below saturation. -----------------------------
  log(`## Added latency at 32 concurrent connections, fixed ${LATENCY_RATE} req/s (small JSON)`);
  log('');
  log('Closed-loop p50 at saturation is queueing (32 / throughput). autocannon paces a fixed rate');
  log('in bursts across the 32 connections, so here up to 32 requests still arrive together and a');
  log("row's added p50 is roughly its CPU per request times half the burst.");
  log('');
  log('| target | p50 ms | p99 ms | p50 added over direct ms | p99 added over direct ms |');
  log('|---|---:|---:|---:|---:|');
  const lat = new Map<string, LoadResult>();
  for (const t of targets) {
    const url = `${originOf(t)}/v1/chat/completions?case=small`;
    await load({ url, connections: 32, duration: WARM, body: SMALL_BODY });
    lat.set(
      t.name,
      await load({
        url,
        connections: 32,
        duration: D,
        overallRate: LATENCY_RATE,
        body: SMALL_BODY,
        pid: t.pid,
      }),
    );
  }
  const d0 = lat.get('direct (stub)') as LoadResult;
  for (const [name, r] of lat) {
    const direct = name === 'direct (stub)';
    log(
      `| ${name} | ${fmt(r.p50Us / 1000, 3)} | ${fmt(r.p99Us / 1000, 3)} | ${direct ? '—' : fmt((r.p50Us - d0.p50Us) / 1000, 3)} | ${direct ? '—' : fmt((r.p99Us - d0.p99Us) / 1000, 3)} |`,
    );
  }
  log('');

  log('One connection, one request at a time (no queueing: the cost of the hop itself):');
  log('');
  log('| target | req/s | p50 ms | p99 ms | p50 added over direct ms | server CPU µs/req |');
  log('|---|---:|---:|---:|---:|---:|');
  const seq = new Map<string, LoadResult>();
  for (const t of targets) {
    const url = `${originOf(t)}/v1/chat/completions?case=small`;
    seq.set(t.name, await load({ url, connections: 1, duration: D / 2, body: SMALL_BODY, pid: t.pid }));
  }
  const s0 = seq.get('direct (stub)') as LoadResult;
  for (const [name, r] of seq) {
    log(
      `| ${name} | ${fmt(r.rps)} | ${fmt(r.p50Us / 1000, 3)} | ${fmt(r.p99Us / 1000, 3)} | ${name === 'direct (stub)' ? '—' : fmt((r.p50Us - s0.p50Us) / 1000, 3)} | ${fmt(r.cpuUsPerReq)} |`,
    );
  }
  log('');

  // --- Many concurrent streams held open. ----------------------------------------------------------
  log(
    `## ${HELD_STREAMS} concurrent streams held open (${HELD_CHUNKS} chunks, one every ${HELD_EVERY_MS} ms: ${(HELD_CHUNKS * HELD_EVERY_MS) / 1000} s each)`,
  );
  log('');
  log(
    '| target | streams completed | wall s | p50 stream ms | p99 stream ms | peak RSS MB | server CPU ms per stream | errors |',
  );
  log('|---|---:|---:|---:|---:|---:|---:|---:|');
  let heldEld = { p99: Number.NaN, max: Number.NaN };
  for (const t of targets) {
    let seq = 0;
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssBytes(t.pid));
    }, 200);
    const run = () =>
      load({
        url: `${originOf(t)}/`,
        connections: HELD_STREAMS,
        amount: HELD_STREAMS,
        body: STREAM_BODY,
        timeoutS: 60,
        path: () =>
          `/v1/chat/completions?case=hold&chunks=${HELD_CHUNKS}&every=${HELD_EVERY_MS}&id=chatcmpl-held-${t.port}-${seq++}`,
        pid: t.pid,
      });
    let r: LoadResult;
    if (t.name === 'sidecar') {
      const withEld = await eld(run);
      heldEld = { p99: withEld.eldP99, max: withEld.eldMax };
      r = withEld;
    } else {
      r = await run();
    }
    clearInterval(sampler);
    log(
      `| ${t.name} | ${fmt(r.ok)} / ${HELD_STREAMS} | ${fmt(r.seconds, 1)} | ${fmt(r.p50Us / 1000)} | ${fmt(r.p99Us / 1000)} | ${mb(peak)} | ${fmt(r.cpuUsPerReq / 1000, 2)} | ${r.errors + r.non2xx} |`,
    );
  }
  log('');
  log(
    `Sidecar event-loop delay while ${HELD_STREAMS} streams ran and each was signed at its end: p99 ${fmt(heldEld.p99, 2)} ms, max ${fmt(heldEld.max, 2)} ms.`,
  );
  log('');

  // --- Attestation reports. -------------------------------------------------------------------------
  log('## Attestation report (sidecar, simulated TDX quote and GPU evidence), 32 connections');
  log('');
  log('| request | req/s | p50 ms | p99 ms | sidecar CPU µs/req | errors / non-2xx |');
  log('|---|---:|---:|---:|---:|---:|');
  const reportUrl = `http://127.0.0.1:${sidecar.port}/v1/attestation/report`;
  await load({ url: reportUrl, method: 'GET', connections: 32, duration: WARM });
  const cached = await load({
    url: reportUrl,
    method: 'GET',
    connections: 32,
    duration: D,
    pid: sidecar.pid,
  });
  const nonce = (): string =>
    `/v1/attestation/report?nonce=${crypto.getRandomValues(new Uint8Array(32)).reduce((s, b) => s + b.toString(16).padStart(2, '0'), '')}`;
  const fresh = await load({
    url: reportUrl,
    method: 'GET',
    connections: 32,
    duration: D,
    path: nonce,
    pid: sidecar.pid,
  });
  // The HTTPS sidecar, binding its certificate (include_tls_fingerprint=true).
  const tlsReportUrl = `https://127.0.0.1:${sidecarTls.port}/v1/attestation/report`;
  const bound = (): string => `${nonce()}&include_tls_fingerprint=true`;
  await load({ url: tlsReportUrl, method: 'GET', connections: 32, duration: WARM, path: bound });
  const freshTls = await load({
    url: tlsReportUrl,
    method: 'GET',
    connections: 32,
    duration: D,
    path: bound,
    pid: sidecarTls.pid,
  });
  for (const [name, r] of [
    ['cached (no nonce)', cached],
    ['fresh (random nonce each)', fresh],
    ['fresh, https, include_tls_fingerprint=true', freshTls],
  ] as const) {
    log(
      `| ${name} | ${fmt(r.rps)} | ${fmt(r.p50Us / 1000, 2)} | ${fmt(r.p99Us / 1000, 2)} | ${fmt(r.cpuUsPerReq)} | ${r.errors} / ${r.non2xx} |`,
    );
  }
  log('');

  // --- Signature store: fill a fresh sidecar, look up, measure memory. ------------------------------
  await sidecar.stop();
  children.splice(children.indexOf(sidecar), 1);
  await sidecarTls.stop();
  children.splice(children.indexOf(sidecarTls), 1);
  const fresh2: Child = await startChild(`${here}sidecar-child.mjs`, upstream, ['--expose-gc']);
  children.push(fresh2);
  const base = await fresh2.ask<{ rss: number; heapUsed: number }>({ cmd: 'stats', gc: true });
  let fillSeq = 0;
  const fill = await load({
    url: `http://127.0.0.1:${fresh2.port}/`,
    connections: 32,
    amount: FILL,
    body: SMALL_BODY,
    path: () => `/v1/chat/completions?case=small&id=chatcmpl-fill-${fillSeq++}`,
    pid: fresh2.pid,
  });
  const filled = await fresh2.ask<{ rss: number; heapUsed: number }>({ cmd: 'stats', gc: true });
  const lookupUrl = `http://127.0.0.1:${fresh2.port}/`;
  const randomId = (): string => `/v1/signature/chatcmpl-fill-${Math.floor(Math.random() * FILL)}`;
  await load({ url: lookupUrl, method: 'GET', connections: 32, duration: WARM, path: randomId });
  const lookups = await load({
    url: lookupUrl,
    method: 'GET',
    connections: 32,
    duration: D,
    path: randomId,
    pid: fresh2.pid,
  });
  const after = await fresh2.ask<{ rss: number; heapUsed: number }>({ cmd: 'stats', gc: true });
  log(`## Signature store: ${fmt(FILL)} signed completions through a fresh sidecar, then lookups`);
  log('');
  log('| measure | value |');
  log('|---|---:|');
  log(
    `| fill: signed small completions/s (32 connections) | ${fmt(fill.rps)} (${fill.ok} ok, ${fill.errors + fill.non2xx} errors) |`,
  );
  log(`| fill: sidecar CPU µs per signed completion | ${fmt(fill.cpuUsPerReq)} |`);
  log(`| RSS before fill (after GC) | ${mb(base.rss)} MB |`);
  log(`| RSS with ${fmt(FILL)} signatures stored (after GC) | ${mb(filled.rss)} MB |`);
  log(`| RSS after the lookup run (after GC) | ${mb(after.rss)} MB |`);
  log(
    `| JS heap used: before → with ${fmt(FILL)} stored | ${mb(base.heapUsed)} → ${mb(filled.heapUsed)} MB |`,
  );
  log(`| heap per stored signature | ${fmt((filled.heapUsed - base.heapUsed) / FILL)} B |`);
  log(`| lookups GET /v1/signature/{id} req/s (random ids, 32 connections) | ${fmt(lookups.rps)} |`);
  log(`| lookups p50 / p99 ms | ${fmt(lookups.p50Us / 1000, 2)} / ${fmt(lookups.p99Us / 1000, 2)} |`);
  log(`| lookups sidecar CPU µs/req | ${fmt(lookups.cpuUsPerReq)} |`);
  log(`| lookup errors / non-2xx | ${lookups.errors} / ${lookups.non2xx} |`);
  log('');

  for (const c of children) await c.stop();

  // --- Signing speed, with the servers gone. --------------------------------------------------------
  log('## Signing speed, one core (tight loop in one thread)');
  log('');
  log('| implementation | signatures/s | µs/signature | note |');
  log('|---|---:|---:|---|');
  for (const r of await runSigning(quick ? 0.5 : 2)) {
    log(`| ${r.name} | ${fmt(r.perSecond)} | ${fmt(r.usPerOp, 1)} | ${r.note} |`);
  }
  log('');
  log('## E2EE field crypto, one core (one ~20-byte field: what one SSE chunk costs the sidecar)');
  log('');
  log('| operation | ops/s | µs/op |');
  log('|---|---:|---:|');
  for (const r of await runE2eeCrypto(quick ? 0.5 : 2)) {
    log(`| ${r.name} | ${fmt(r.perSecond)} | ${fmt(r.usPerOp, 1)} |`);
  }
  log('');
  log(
    `Total bench time: ${fmt((Date.now() - started) / 1000)} s; load average at end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}.`,
  );
  mkdirSync(`${here}../.bench-out`, { recursive: true });
  writeFileSync(`${here}../.bench-out/latest${quick ? '-quick' : ''}.md`, `${out.join('\n')}\n`);
};

// Bound the whole run: a wedged child must not hold the terminal forever.
const guard = setTimeout(
  () => {
    console.error('bench: overall time limit reached');
    process.exit(2);
  },
  (quick ? 4 : 14) * 60_000,
);
guard.unref();
await main();
process.exit(0);
