import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeHtml } from '../../src/gateway/index.js';
import { postJson, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { type Mitm, startMitm, startTestGateway, type TestGateway } from './harness.js';

/**
 * The status page rendered by a real headless browser (Debian's chromium, installed by .ci/run):
 * its figures must match the gateway's state, and provider-controlled text must stay text.
 * Under CI=true a missing browser fails the test instead of skipping it.
 */
const findChromium = (): string | undefined => {
  const explicit = process.env.CHROMIUM_PATH;
  if (explicit !== undefined && explicit !== '') return explicit;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return join(dir, name);
      } catch {
        // not here
      }
    }
  }
  return undefined;
};

const chromium = findChromium();
const ci = process.env.CI === 'true';

const dumpDom = async (url: string): Promise<string> => {
  const profile = mkdtempSync(join(tmpdir(), 'teeml-chromium-'));
  try {
    // Asynchronous on purpose: the gateway answering the browser runs in this process.
    const { stdout } = await promisify(execFile)(
      chromium ?? 'chromium',
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--no-first-run',
        `--user-data-dir=${profile}`,
        '--virtual-time-budget=2000',
        '--dump-dom',
        url,
      ],
      { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
    );
    return stdout;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
};

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
    expect(textOf(dom, 'state')).toBe('circuit open');
    expect(textOf(dom, 'circuit-check')).toBe('signature.json.text');
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
    const receiptIds = [...dom.matchAll(/class="rid"><code>([^<]+)<\/code>/g)].map((m) => m[1]);
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
