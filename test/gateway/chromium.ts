import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

/**
 * Debian's chromium (installed by .ci/run), or CHROMIUM_PATH: the real browser the status page is
 * tested and photographed in.
 */
export const findChromium = (): string | undefined => {
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

/**
 * Runs headless chromium on `url` with a fresh profile and a window `width` px wide; `mode` is
 * `--dump-dom` (returns the DOM after scripts ran) or `--screenshot=<file>`. Asynchronous on purpose:
 * the server answering the browser runs in this process.
 */
export const runChromium = async (
  url: string,
  options: { width: number; height?: number; mode: '--dump-dom' | `--screenshot=${string}` },
): Promise<string> => {
  const profile = mkdtempSync(join(tmpdir(), 'teeml-chromium-'));
  try {
    const { stdout } = await promisify(execFile)(
      findChromium() ?? 'chromium',
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--no-first-run',
        '--hide-scrollbars',
        `--user-data-dir=${profile}`,
        `--window-size=${options.width},${options.height ?? 900}`,
        '--virtual-time-budget=2000',
        options.mode,
        url,
      ],
      { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
    );
    return stdout;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
};

/**
 * Serves fixed HTML pages on a loopback port (path → page), plus `/frame/<width>/<path>`: the page in
 * a same-origin frame that wide. Headless chromium keeps its window at least 500 px wide, so a
 * phone width is shown (and measured) in such a frame: its own viewport, as on a phone.
 */
export const servePages = async (
  pages: ReadonlyMap<string, string>,
): Promise<{ url: string; close(): Promise<void> }> => {
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    const frame = /^\/frame\/(\d+)(\/.*)$/.exec(path);
    const html =
      frame?.[2] !== undefined && pages.has(frame[2])
        ? `<!doctype html><body style="margin:0"><iframe src="${frame[2]}" style="width:${frame[1]}px;height:100vh;border:0;display:block"></iframe></body>`
        : pages.get(path);
    res.writeHead(html === undefined ? 404 : 200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};
