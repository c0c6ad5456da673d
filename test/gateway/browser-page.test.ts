import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { type Mitm, startMitm, startTestGateway, type TestGateway } from './harness.js';

/**
 * Issue 21, item 6 in a real browser (Debian's chromium, installed by .ci/run): a hostile page on
 * another origin tries a cross-site simple POST (no preflight) and a cross-origin read, and a
 * DNS-rebinding page (`evil.example` resolved to 127.0.0.1 by `--host-resolver-rules`) loads the
 * gateway's status page under its own name. Under CI=true a missing browser fails the test.
 */
const findChromium = (): string | undefined => {
  const explicit = process.env.CHROMIUM_PATH;
  if (explicit !== undefined && explicit !== '') return explicit;
  for (const dir of (process.env.PATH ?? '').split(delimiter))
    for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return join(dir, name);
      } catch {
        // not here
      }
    }
  return undefined;
};
const chromium = findChromium();
const ci = process.env.CI === 'true';

const dumpDom = async (url: string): Promise<string> => {
  const profile = mkdtempSync(join(tmpdir(), 'teeml-chromium-'));
  try {
    const { stdout } = await promisify(execFile)(
      chromium ?? 'chromium',
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--no-first-run',
        `--user-data-dir=${profile}`,
        '--host-resolver-rules=MAP evil.example 127.0.0.1',
        '--virtual-time-budget=4000',
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

/** The hostile page: its script reports what it managed in #out. */
const PAGE = (gateway: string) => `<!doctype html><html><body><pre id="out">pending</pre><script>
(async () => {
  const r = {};
  const body = JSON.stringify({ model: 'teeml-demo', messages: [{ role: 'user', content: 'spend' }] });
  try {
    await fetch('${gateway}/v1/chat/completions', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body });
    r.simple = 'sent';
  } catch { r.simple = 'error'; }
  try { const x = await fetch('${gateway}/health'); r.read = 'read ' + x.status; } catch { r.read = 'blocked'; }
  try {
    const x = await fetch('${gateway}/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    r.json = 'read ' + x.status;
  } catch { r.json = 'blocked'; }
  document.getElementById('out').textContent = JSON.stringify(r);
})();
</script></body></html>`;

let sidecar: TestSidecar;
let mitm: Mitm;
let gateway: TestGateway;
let page: Server;
beforeAll(async () => {
  sidecar = await startTestSidecar();
  mitm = await startMitm(sidecar.url);
  gateway = await startTestGateway(mitm.url);
  page = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(PAGE(gateway.url));
  });
  await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', () => resolve()));
});
afterAll(async () => {
  page.closeAllConnections();
  await new Promise<void>((resolve) => page.close(() => resolve()));
  await gateway.close();
  await mitm.close();
  await sidecar.close();
});

const chats = () => mitm.seen.filter((s) => s.path.includes('chat/completions')).length;

describe('gateway against a hostile page in headless chromium', () => {
  it.runIf(chromium !== undefined || ci)(
    'a page on another origin neither spends nor reads',
    async () => {
      expect(chromium, 'chromium not found (apt-get install chromium; .ci/run installs it)').toBeDefined();
      const before = chats();
      const { port } = page.address() as AddressInfo;
      const dom = await dumpDom(`http://evil.example:${port}/`);
      const out = /<pre id="out">([^<]*)<\/pre>/.exec(dom)?.[1] ?? '';
      expect(out).not.toBe('pending');
      const result = JSON.parse(out.replaceAll('&quot;', '"')) as Record<string, string>;
      expect(result['read']).toBe('blocked');
      expect(result['json']).toBe('blocked');
      // The no-cors POST resolves opaquely in the page either way: what matters is that the
      // provider never saw it (before the fix it did, and the user paid for the answer).
      expect(chats()).toBe(before);
    },
    90_000,
  );

  it.runIf(chromium !== undefined || ci)(
    'DNS rebinding: the status page does not load under a foreign name',
    async () => {
      const { port } = new URL(gateway.url);
      const dom = await dumpDom(`http://evil.example:${port}/`);
      expect(dom).toContain('host_not_allowed');
      expect(dom).not.toContain('signing');
    },
    90_000,
  );
});
