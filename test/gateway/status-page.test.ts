import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeHtml } from '../../src/gateway/index.js';
import { postJson, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { findChromium, runChromium, servePages } from './chromium.js';
import { type Mitm, startMitm, startTestGateway, type TestGateway } from './harness.js';
import { captureStates, type StateCapture } from './status-states.js';

/**
 * The status page rendered by a real headless browser (Debian's chromium, installed by .ci/run):
 * its figures must match the gateway's state, and provider-controlled text must stay text.
 * Under CI=true a missing browser fails the test instead of skipping it.
 */
const chromium = findChromium();
const ci = process.env.CI === 'true';

const dumpDom = (url: string): Promise<string> => runChromium(url, { width: 1280, mode: '--dump-dom' });

/** Text of the element with this id in the browser's DOM (tags stripped, entities decoded). */
const textOf = (dom: string, id: string): string | undefined => {
  const m = new RegExp(`id="${id}"[^>]*>([\\s\\S]*?)</(td|strong|code|p)>`).exec(dom);
  return m?.[1]
    ?.replace(/<[^>]+>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .trim();
};

const INJECTED = '<img src=x onerror="document.title=1"><b id="injected">x</b>';

let sidecar: TestSidecar;
let mitm: Mitm;
let gateway: TestGateway;

beforeAll(async () => {
  sidecar = await startTestSidecar();
  mitm = await startMitm(sidecar.url);
  // The provider names its platform: a hint the page shows, and must show as text.
  mitm.mutate = (e) => {
    if (!e.path.includes('/attestation/report')) return undefined;
    const report = JSON.parse(e.body.toString()) as Record<string, unknown>;
    return { ...e, body: Buffer.from(JSON.stringify({ ...report, platform: INJECTED })) };
  };
  gateway = await startTestGateway(mitm.url);
});
afterAll(async () => {
  await gateway.close();
  await mitm.close();
  await sidecar.close();
});

describe('status page in headless chromium', () => {
  it.runIf(chromium !== undefined || ci)('renders, and its figures match the gateway state', async () => {
    expect(chromium, 'chromium not found (apt-get install chromium; .ci/run installs it)').toBeDefined();
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const messages = [{ role: 'user' as const, content: SECRET_MARKERS.prompt }];
    await client.chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 });
    const stream = await client.chat.completions.create({
      model: 'teeml-demo',
      messages,
      max_tokens: 4,
      stream: true,
    });
    for await (const _ of stream) {
      // drain
    }
    await client.models.list();
    // One tampered answer: failed, circuit open, then one refused request.
    mitm.mutate = (e) => {
      if (!(e.method === 'POST' && e.path.includes('/chat/completions'))) return undefined;
      const body = Buffer.from(e.body);
      body[body.indexOf('demo') + 3] = 0x61;
      return { ...e, body };
    };
    await postJson(`${gateway.url}/v1/chat/completions`, { model: 'teeml-demo', messages });
    await postJson(`${gateway.url}/v1/chat/completions`, { model: 'teeml-demo', messages });
    mitm.mutate = () => undefined;

    const dom = await dumpDom(`${gateway.url}/`);
    const a = gateway.attestor.current;
    const identity = a?.identity;
    expect(dom).toContain('<h1>teeml-sidecar gateway</h1>');
    expect(dom).toContain('data-state="circuit_open"');
    expect(textOf(dom, 'summary')).toMatch(/^circuit open after answer \S+: signature\.json\.text — /);
    expect(textOf(dom, 'signing-address')).toBe(a?.signer?.address);
    expect(textOf(dom, 'signing-address')?.toLowerCase()).toBe(sidecar.signingAddress.toLowerCase());
    expect(textOf(dom, 'tcb-status')).toBe(identity?.tcbStatus);
    expect(textOf(dom, 'mrtd')).toBe(identity?.measurements.mrtd);
    expect(textOf(dom, 'rtmr3')).toBe(identity?.measurements.rtmr3);
    expect(textOf(dom, 'quote-sha256')).toBe(a?.quoteSha256);
    expect(textOf(dom, 'nonce')).toBe(a?.nonce);
    expect(textOf(dom, 'last-attested')).toBe(new Date(a?.at ?? 0).toISOString());
    expect(textOf(dom, 'count-verified')).toBe(String(gateway.counters.verified));
    expect(gateway.counters.verified).toBe(2);
    expect(textOf(dom, 'count-failed')).toBe('1');
    expect(textOf(dom, 'count-refused')).toBe('1');
    expect(textOf(dom, 'count-unsigned')).toBe('1');
    const receiptIds = [...dom.matchAll(/class="rid[^"]*"><code>([^<]+)<\/code>/g)].map((m) => m[1]);
    expect(receiptIds).toEqual(gateway.receipts.recent.map((r) => r.id));
    const gpuRows = [...dom.matchAll(/<td class="cc">([^<]+)<\/td>/g)].map((m) => m[1]);
    expect(gpuRows.length).toBe(identity?.gpus.length);
    expect(gpuRows.length).toBeGreaterThan(0);
    expect(gpuRows).toEqual(identity?.gpus.map((g) => g.ccMode));
    expect(dom).toContain('id="simulated"');
    // Provider-controlled text stayed text: no element was injected, the title was not changed.
    expect(textOf(dom, 'platform')).toBe(INJECTED);
    expect(dom).not.toMatch(/<b id="injected"|<img /);
    expect(dom).toMatch(/<title>teeml-sidecar gateway: circuit open<\/title>/);
  });

  it('escapes every character that could open markup', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe(
      '&#60;a href=&#34;x&#34; title=&#39;y&#39;&#62;&#38;&#60;/a&#62;',
    );
  });
});

/**
 * Measures the page in the browser: a copy of exactly the HTML the gateway served, with a script
 * appended that writes what it measured into the DOM (the page itself has no script, and its CSP
 * would refuse one). Served from a loopback server of the test's own.
 */
const MEASURE = `<script>
const vw = document.documentElement.clientWidth;
const name = (el) => el.tagName + (el.id ? '#' + el.id : '') + (el.className ? '.' + el.className : '');
const over = [...document.querySelectorAll('body *')].filter((el) => {
  const r = el.getBoundingClientRect();
  return r.width > 0 && (r.right > vw + 0.5 || r.left < -0.5);
}).map(name);
const broken = [...document.querySelectorAll('.check-id, .label, .nobr, .tok')].filter((el) => {
  const cell = el.closest('td, th, p').getBoundingClientRect();
  // Lines of its text (an inline block has one box however many lines its text takes).
  const range = document.createRange();
  range.selectNodeContents(el);
  const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.bottom)));
  return lines.size !== 1 || el.getBoundingClientRect().right > cell.right + 0.5;
}).map((el) => el.textContent);
const s = document.getElementById('summary');
const out = { vw, scrollWidth: document.documentElement.scrollWidth, over, broken,
  ids: document.querySelectorAll('.check-id').length, kept: document.querySelectorAll('.nobr, .tok').length, bg: getComputedStyle(s).backgroundColor,
  state: s.dataset.state, words: s.textContent };
const pre = document.createElement('pre');
pre.id = 'measure';
pre.textContent = JSON.stringify(out);
// In the phone-width frame, the result goes to the top document (the one --dump-dom prints).
(window.top ?? window).document.body.append(pre);
</script>`;

interface Measured {
  vw: number;
  scrollWidth: number;
  over: string[];
  broken: string[];
  ids: number;
  /** Times and ids in the summary kept whole (each checked in broken). */
  kept: number;
  bg: string;
  state: string;
  words: string;
}

/**
 * Headless chromium keeps its window at least 500 px wide: narrower widths are measured in a
 * same-origin frame that wide (its own viewport, so the page's media query applies as on a phone).
 */
const measured = new Map<string, Measured>();
const measure = async (base: string, name: string, width: number): Promise<Measured> => {
  const key = `${name}@${width}`;
  const seen = measured.get(key);
  if (seen !== undefined) return seen;
  const url = width < 500 ? `${base}/frame/${width}/${name}` : `${base}/${name}`;
  const dom = await runChromium(url, { width: Math.max(width, 500), mode: '--dump-dom' });
  const m = /<pre id="measure">([\s\S]*?)<\/pre>/.exec(dom);
  expect(m, 'the measuring script ran').not.toBeNull();
  const text = (m?.[1] ?? '').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  const result = JSON.parse(text) as Measured;
  measured.set(key, result);
  return result;
};

const ISO = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';
const EXPECTED: Record<StateCapture['name'], { words: RegExp; bg: string; health: number }> = {
  verified: { words: /^verified$/, bg: 'rgb(218, 251, 225)', health: 200 },
  simulated: {
    words: /^simulated provider: answers verified against a simulated TEE, proves nothing$/,
    bg: 'rgb(255, 241, 194)',
    health: 200,
  },
  circuit_open: {
    words: new RegExp(
      `^circuit open after answer \\S+: signature\\.json\\.text — .+ — until the next attestation at ${ISO}$`,
    ),
    bg: 'rgb(255, 225, 225)',
    health: 503,
  },
  refusing: {
    words: new RegExp(`^refusing: report\\.nonce — .+, retrying at ${ISO}$`),
    bg: 'rgb(255, 225, 225)',
    health: 503,
  },
  unreachable: {
    words: new RegExp(`^provider unreachable since ${ISO} \\(ECONNREFUSED\\)$`),
    bg: 'rgb(255, 225, 225)',
    health: 503,
  },
};

describe('status page states in headless chromium', () => {
  let states: StateCapture[] = [];
  let pages: { url: string; close(): Promise<void> } | undefined;
  let base = '';
  beforeAll(async () => {
    if (chromium === undefined && !ci) return;
    states = await captureStates();
    pages = await servePages(
      new Map(states.map((s) => [`/${s.name}`, s.html.replace('</body>', `${MEASURE}</body>`)])),
    );
    base = pages.url;
  }, 120_000);
  afterAll(async () => {
    await pages?.close();
  });

  it.runIf(chromium !== undefined || ci)(
    'each state is said in words and colour, and /health says the same',
    async () => {
      expect(chromium, 'chromium not found (apt-get install chromium; .ci/run installs it)').toBeDefined();
      expect(states.map((s) => s.name)).toEqual([
        'verified',
        'simulated',
        'circuit_open',
        'refusing',
        'unreachable',
      ]);
      for (const s of states) {
        const want = EXPECTED[s.name];
        const m = await measure(base, s.name, 1280);
        expect(m.state, s.name).toBe(s.name);
        expect(m.words, s.name).toMatch(want.words);
        expect(m.bg, s.name).toBe(want.bg);
        expect(s.health.status, s.name).toBe(want.health);
        expect(s.health.body.summary, s.name).toMatchObject({ state: s.name, words: m.words });
        expect(s.health.body.attestation?.checks.length, s.name).toBe(m.ids);
        // Neither the page nor /health carries a prompt or a completion, whatever the state.
        for (const marker of Object.values(SECRET_MARKERS)) {
          expect(s.html, s.name).not.toContain(marker);
          expect(JSON.stringify(s.health.body), s.name).not.toContain(marker);
        }
        // Times (and the circuit's answer id) are kept whole: the layout test checks each stays on one line.
        expect(m.kept, s.name).toBe(
          { verified: 0, simulated: 0, circuit_open: 2, refusing: 1, unreachable: 1 }[s.name],
        );
      }
    },
    180_000,
  );

  it.runIf(chromium !== undefined || ci)(
    'at 375 px and 1280 px nothing overflows and no label or check id wraps',
    async () => {
      for (const width of [375, 1280]) {
        for (const s of states) {
          const m = await measure(base, s.name, width);
          expect(m.vw, `${s.name} at ${width}`).toBe(width);
          expect({ over: m.over, broken: m.broken }, `${s.name} at ${width}`).toEqual({
            over: [],
            broken: [],
          });
          expect(m.scrollWidth, `${s.name} at ${width}`).toBeLessThanOrEqual(width);
        }
      }
    },
    240_000,
  );
});
