import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { type GatewayView, gatewayView, renderStatusPage, type StatusView } from '../../src/gateway/index.js';
import { postJson, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { type Mitm, startMitm, startTestGateway, type TestGateway } from './harness.js';

/** One state of the status page as the gateway served it: the page, and /health at the same moment. */
export interface StateCapture {
  name: 'verified' | 'simulated' | 'unreachable' | 'refusing' | 'circuit_open';
  html: string;
  health: { status: number; body: GatewayView };
}

const messages = [{ role: 'user' as const, content: SECRET_MARKERS.prompt }];

const capture = async (name: StateCapture['name'], url: string): Promise<StateCapture> => {
  const html = await (await fetch(`${url}/`)).text();
  const res = await fetch(`${url}/health`);
  return { name, html, health: { status: res.status, body: (await res.json()) as GatewayView } };
};

const chat = async (url: string): Promise<void> => {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  await client.chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 });
};

/**
 * "verified" needs TDX hardware, which a test does not have: the same page rendered from the simulated
 * gateway's real attestation with the simulation marks taken off. Only this state is built by hand.
 */
const verifiedCapture = (g: TestGateway, provider: string): StateCapture => {
  const a = g.attestor.current;
  if (a?.identity === undefined) throw new Error('no attestation to render');
  const hardware = {
    ...a,
    identity: { ...a.identity, simulated: false },
    checks: a.checks.map(({ simulated: _, ...c }) => c),
  };
  const now = Date.now();
  const view: StatusView = {
    provider: { mode: 'direct', provider },
    linkHealth: {},
    current: hardware,
    lastPassed: hardware,
    counters: { ...g.counters },
    circuit: { open: false },
    reachability: { ok: true, at: now },
    onFailure: 'refuse',
    e2ee: { on: true, scheme: 'near-e2ee v1', words: 'on (near-e2ee v1)' },
    streamRelease: 'as-they-arrive (attested TLS)',
    receipts: g.receipts.recent,
    receiptsFile: undefined,
    nextAttestationAt: now + 600_000,
    now,
  };
  return { name: 'verified', html: renderStatusPage(view), health: { status: 200, body: gatewayView(view) } };
};

/**
 * Drives real gateways through the status page's main states: a real simulated sidecar behind a man
 * in the middle that flips a byte (circuit open) or asks the report for another nonce (refusing),
 * and a second sidecar that is stopped (unreachable). Used by the browser test and by
 * scripts/status-screenshots.ts.
 */
export const captureStates = async (): Promise<StateCapture[]> => {
  const started: Array<{ close(): Promise<void> }> = [];
  try {
    const sidecar: TestSidecar = await startTestSidecar();
    started.push(sidecar);
    const mitm: Mitm = await startMitm(sidecar.url);
    started.push(mitm);
    const g = await startTestGateway(mitm.url);
    started.push(g);
    await chat(g.url);
    const out: StateCapture[] = [
      verifiedCapture(g, 'https://provider.example:8443'),
      await capture('simulated', g.url),
    ];
    // A byte flipped in an answer: failed, circuit open.
    mitm.mutate = (e) => {
      if (!(e.method === 'POST' && e.path.includes('/chat/completions'))) return undefined;
      const body = Buffer.from(e.body);
      body[body.indexOf('demo') + 3] = 0x61;
      return { ...e, body };
    };
    await postJson(`${g.url}/v1/chat/completions`, { model: 'teeml-demo', messages });
    mitm.mutate = () => undefined;
    out.push(await capture('circuit_open', g.url));
    // A report for another nonce: report.nonce fails, requests are refused.
    mitm.route = (path) => ({
      target: sidecar.url,
      path: path.replace(/nonce=[0-9a-f]{64}/, `nonce=${randomBytes(32).toString('hex')}`),
    });
    await g.attestNow();
    out.push(await capture('refusing', g.url));
    // A provider that goes away while attested: requests get 502 upstream_unreachable.
    const gone = await startTestSidecar();
    const h = await startTestGateway(gone.url);
    started.push(h);
    await chat(h.url);
    await gone.close();
    await postJson(`${h.url}/v1/chat/completions`, { model: 'teeml-demo', messages });
    out.push(await capture('unreachable', h.url));
    return out;
  } finally {
    for (const s of started.reverse()) await s.close();
  }
};
