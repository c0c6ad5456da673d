/**
 * Screenshots of the gateway status page's main states for the docs (docs/images/status-*.png),
 * taken in the same headless chromium the tests use, of pages served by real gateways driven into
 * each state (test/gateway/status-states.ts). Run: `npx tsx scripts/status-screenshots.ts`.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { findChromium, runChromium, servePages } from '../test/gateway/chromium.js';
import { captureStates } from '../test/gateway/status-states.js';

const OUT = join(import.meta.dirname, '..', 'docs', 'images');

if (findChromium() === undefined) {
  console.error('chromium not found: apt-get install chromium, or set CHROMIUM_PATH');
  process.exit(1);
}
mkdirSync(OUT, { recursive: true });
const states = await captureStates();
const pages = await servePages(new Map(states.map((s) => [`/${s.name}`, s.html])));
try {
  for (const s of states) {
    const file = join(OUT, `status-${s.name.replace('_', '-')}.png`);
    await runChromium(`${pages.url}/${s.name}`, { width: 1280, height: 760, mode: `--screenshot=${file}` });
    console.log(file);
  }
  // A phone width: the page in a 375 px frame (the window itself cannot be narrower than 500 px).
  const phone = join(OUT, 'status-circuit-open-375.png');
  await runChromium(`${pages.url}/frame/375/circuit_open`, {
    width: 375,
    height: 1100,
    mode: `--screenshot=${phone}`,
  });
  console.log(phone);
} finally {
  await pages.close();
}
