import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_USAGE } from '../../src/cli/gateway.js';
import { receiptsCommand } from '../../src/cli/receipts.js';
import { verifyCommand } from '../../src/cli/verify.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { runGatewayCli } from '../gateway/run-cli.js';

/**
 * Messages that say what to do (issue 22 item 5): every error names its cause (address and errno,
 * HTTP status, what answered instead of a sidecar) and the fix where there is one; `verify` prints
 * each check as it completes; a mistyped flag gets "did you mean".
 */
const run = async (argv: string[], deps: Parameters<typeof verifyCommand>[3] = {}) => {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks: string[] = [];
  let err = '';
  stdout.on('data', (c: Buffer) => chunks.push(c.toString()));
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const code = await verifyCommand(argv, stdout, stderr, deps);
  return { code, out: chunks.join(''), chunks, err };
};

/** A port nothing listens on: bound, then closed. */
const closedPort = async (): Promise<number> => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
};

let sidecar: TestSidecar;
let website: Server;
let websiteUrl = '';
beforeAll(async () => {
  sidecar = await startTestSidecar();
  // Not a sidecar: a web server answering every path with an HTML 404.
  website = createServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!DOCTYPE html><html><body>Not Found</body></html>');
  });
  await new Promise<void>((resolve) => website.listen(0, '127.0.0.1', () => resolve()));
  websiteUrl = `http://127.0.0.1:${(website.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await sidecar.close();
  await new Promise<void>((resolve) => website.close(() => resolve()));
});

describe('verify: causes and fixes', () => {
  it('a closed port: names host:port and ECONNREFUSED, and asks whether a sidecar serves there', async () => {
    const port = await closedPort();
    const { code, out } = await run([`http://127.0.0.1:${port}`]);
    expect(code).toBe(1);
    expect(out).toContain(`cannot reach 127.0.0.1:${port}: ECONNREFUSED (nothing listens on that port)`);
    expect(out).toContain('→ is a teeml-sidecar');
  });

  it('a web server that is not a sidecar: "not a teeml-sidecar", its HTTP status and what came back', async () => {
    const { code, out } = await run([websiteUrl]);
    expect(code).toBe(1);
    expect(out).toContain(
      'not a teeml-sidecar: GET /v1/attestation/report answered HTTP 404 text/html: "<!DOCTYPE html>',
    );
  });

  it('a simulated provider without --allow-simulated: the failed check names the flag', async () => {
    const { code, out } = await run([sidecar.url, '--no-completion']);
    expect(code).toBe(1);
    expect(out).toMatch(/^FAIL\s+report\.simulated\s.*\n\s+→ .*add --allow-simulated to accept it/m);
  });

  it('says it is attesting first, then prints each check as it completes', async () => {
    let seenAtCompletion: string | undefined;
    const outSoFar: string[] = [];
    const stdout = new PassThrough();
    stdout.on('data', (c: Buffer) => outSoFar.push(c.toString()));
    // The first completion request is sent after the report checks: by then their lines are out.
    const fetchSpy: typeof fetch = (input, init) => {
      if (String(input).includes('/chat/completions')) seenAtCompletion ??= outSoFar.join('');
      return fetch(input, init);
    };
    const code = await verifyCommand([sidecar.url, '--allow-simulated'], stdout, new PassThrough(), {
      fetch: fetchSpy,
    });
    expect(code).toBe(0);
    expect(outSoFar[0]).toBe(`teeml-sidecar verify ${sidecar.url}: attesting with a fresh nonce…\n\n`);
    expect(seenAtCompletion).toMatch(/^PASS\s+report\.fetch\s/m);
    expect(seenAtCompletion).toMatch(/^PASS\*?\s+tdx\.report-data\s/m);
    expect(seenAtCompletion).not.toContain('verdict:');
    expect(outSoFar.join('')).toContain('verdict: PASS');
  });

  it('--json stays one JSON document, with no progress lines', async () => {
    const { code, out } = await run([sidecar.url, '--allow-simulated', '--json', '--no-completion']);
    expect(code).toBe(0);
    expect((JSON.parse(out) as { ok: boolean }).ok).toBe(true);
  });

  it('a mistyped flag: exit 2, "did you mean", no parseArgs text with its unbalanced quote', async () => {
    const { code, err } = await run([sidecar.url, '--alow-simulated']);
    expect(code).toBe(2);
    expect(err).toContain('unknown option --alow-simulated; did you mean --allow-simulated?');
    expect(err).not.toContain('place it at the end');
    const missing = await run([sidecar.url, '--model']);
    expect(missing.err).toContain('--model needs a value');
  });
});

describe('gateway: causes and fixes', () => {
  it('prints that it is attesting, each check, and the failed check with its cause and a hint', async () => {
    const port = await closedPort();
    const cli = await runGatewayCli(['--provider', `http://127.0.0.1:${port}`, '--port', '0']);
    try {
      const out = cli.out.text();
      expect(out).toContain(`teeml-sidecar gateway: attesting http://127.0.0.1:${port} with a fresh nonce…`);
      expect(out).toContain(`FAIL  report.fetch: cannot reach 127.0.0.1:${port}: ECONNREFUSED`);
      expect(out).toContain('NOT attested: report.fetch: cannot reach');
      expect(out).toContain('hint: is a teeml-sidecar serving at --provider?');
    } finally {
      await cli.stop();
    }
  });

  it('a simulated provider without --allow-simulated: the hint names the flag', async () => {
    const cli = await runGatewayCli(['--provider', sidecar.url, '--port', '0']);
    try {
      expect(cli.out.text()).toMatch(/NOT attested: (report\.simulated|tdx\.quote)/);
      expect(cli.out.text()).toContain('--allow-simulated');
    } finally {
      await cli.stop();
    }
  });

  it('a web server that is not a sidecar: says so, with the HTTP status', async () => {
    const cli = await runGatewayCli(['--provider', websiteUrl, '--port', '0']);
    try {
      expect(cli.out.text()).toContain('not a teeml-sidecar: GET /v1/attestation/report answered HTTP 404');
    } finally {
      await cli.stop();
    }
  });

  it('a mistyped flag: "did you mean"; --help has a space between every argument and its text', async () => {
    const cli = await runGatewayCli(['--provder', sidecar.url]);
    expect(await cli.exit).toBe(2);
    expect(cli.err.text()).toContain('unknown option --provder; did you mean --provider?');
    expect(GATEWAY_USAGE).toContain('--zg-inference-address <address> 0G mode:');
    for (const line of GATEWAY_USAGE.split('\n').filter((l) => l.startsWith('  --'))) {
      expect(line).toMatch(/^ {2}--\S+( \S+)? +\S/);
    }
  });
});

describe('receipts: causes', () => {
  it('receipts verify /nonexistent names the path and ENOENT', async () => {
    let err = '';
    const code = await receiptsCommand(['verify', '/nonexistent/receipts.jsonl'], new PassThrough(), {
      write: (t: string) => {
        err += t;
        return true;
      },
    } as unknown as NodeJS.WritableStream);
    expect(code).toBe(2);
    expect(err).toContain('cannot read /nonexistent/receipts.jsonl: no such file (ENOENT)');
  });

  it('a mistyped flag: "did you mean"', async () => {
    let err = '';
    const code = await receiptsCommand(['verify', 'x', '--jsn'], new PassThrough(), {
      write: (t: string) => {
        err += t;
        return true;
      },
    } as unknown as NodeJS.WritableStream);
    expect(code).toBe(2);
    expect(err).toContain('unknown option --jsn; did you mean --json?');
  });
});
