import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { HttpGpuEvidenceProvider } from '../../src/gpu/http.js';
import { checkGpuEvidence } from '../../src/gpu/local-check.js';
import { SimulatedGpuEvidenceProvider } from '../../src/gpu/simulated.js';
import { rejection } from '../rejection.js';

/** A real loopback evidence service; each test installs its handler. */
let server: Server;
let url: string;
let handler: (req: IncomingMessage, res: ServerResponse) => void;
const requests: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  requests.length = 0;
});

const simulated = new SimulatedGpuEvidenceProvider({ gpuCount: 2 });
const entriesFor = async (nonce: Uint8Array) =>
  (await simulated.collect(nonce)).gpus.map((g) => ({
    arch: g.arch,
    certificate: Buffer.from(g.certificateChain).toString('base64'),
    evidence: Buffer.from(g.evidence).toString('base64'),
  }));

const json =
  (body: unknown, status = 200) =>
  (_: IncomingMessage, res: ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

const nonceFrom = (req: IncomingMessage) =>
  new Uint8Array(Buffer.from(new URL(req.url ?? '', url).searchParams.get('nonce') ?? '', 'hex'));

describe('HttpGpuEvidenceProvider', () => {
  it('GETs /evidence?nonce=<hex> and accepts the {evidence_list} form', async () => {
    const nonce = new Uint8Array(randomBytes(32));
    const hex = Buffer.from(nonce).toString('hex');
    handler = (req, res) => {
      void entriesFor(nonceFrom(req)).then((list) =>
        json({ nonce: hex, arch: 'HOPPER', evidence_list: list })(req, res),
      );
    };
    const result = await new HttpGpuEvidenceProvider({ url: `${url}/` }).collect(nonce);
    expect(requests).toEqual([`/evidence?nonce=${hex}`]);
    expect(result).toMatchObject({ simulated: false, ccState: null });
    expect(result.gpus.map((g) => g.index)).toEqual([0, 1]);
    const root = await simulated.rootFingerprint();
    for (const gpu of result.gpus) {
      expect(checkGpuEvidence(gpu, { nonce, now: new Date(), pinnedRoots: [root] }).ok).toBe(true);
    }
  });

  it('accepts the nvattest array form with extra version fields', async () => {
    const nonce = new Uint8Array(randomBytes(32));
    handler = (req, res) => {
      void entriesFor(nonceFrom(req)).then((list) =>
        json(
          list.map((e) => ({
            ...e,
            nonce: Buffer.from(nonce).toString('hex'),
            driver_version: '550.90.07',
            version: '1.0',
          })),
        )(req, res),
      );
    };
    const result = await new HttpGpuEvidenceProvider({ url }).collect(nonce);
    expect(result.gpus).toHaveLength(2);
    expect(result.gpus[0]?.driverVersion).toBe('550.90.07');
  });

  it('refuses evidence for another nonce, stated or inside the report', async () => {
    const nonce = new Uint8Array(randomBytes(32));
    const other = new Uint8Array(randomBytes(32));
    handler = (req, res) => void entriesFor(other).then((list) => json({ evidence_list: list })(req, res));
    expect(await rejection(new HttpGpuEvidenceProvider({ url }).collect(nonce))).toMatchObject({
      status: 503,
      code: 'gpu_evidence_nonce_mismatch',
    });
    handler = (req, res) =>
      void entriesFor(nonce).then((list) =>
        json({ nonce: Buffer.from(other).toString('hex'), evidence_list: list })(req, res),
      );
    expect(await rejection(new HttpGpuEvidenceProvider({ url }).collect(nonce))).toMatchObject({
      code: 'gpu_evidence_nonce_mismatch',
    });
  });

  it.each([
    ['an HTTP error', json({ error: 'no' }, 500), 'gpu_evidence_unavailable', /HTTP 500/],
    [
      'non-JSON',
      (_: IncomingMessage, res: ServerResponse) => res.end('<html>'),
      'gpu_evidence_malformed',
      /not JSON/,
    ],
    ['an empty list', json({ evidence_list: [] }), 'gpu_evidence_malformed', /"evidence_list"/],
    [
      'a wrong arch',
      json([{ arch: 'AMPERE', certificate: 'AAAA', evidence: 'AAAA' }]),
      'gpu_evidence_malformed',
      /"0\.arch"/,
    ],
    [
      'broken evidence',
      json([{ arch: 'HOPPER', certificate: 'AAAA', evidence: 'AAAA' }]),
      'gpu_evidence_malformed',
      /entry 0/,
    ],
  ])('turns %s into a 503', async (_, h, code, message) => {
    handler = h;
    const error = await rejection(new HttpGpuEvidenceProvider({ url }).collect(new Uint8Array(32).fill(7)));
    expect(error).toMatchObject({ status: 503, code });
    expect(error.message).toMatch(message);
  });

  it('caps the answer size, with and without content-length', async () => {
    const big = 'x'.repeat(2048);
    // A declared length over the cap is refused before any body is read: this body never finishes,
    // so only the content-length check can answer (reading would run into the timeout instead).
    handler = (_, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '4096' });
      res.write('{"evidence_list":[');
    };
    const provider = new HttpGpuEvidenceProvider({ url, maxBytes: 1024, timeoutMs: 2_000 });
    expect(await rejection(provider.collect(new Uint8Array(32)))).toMatchObject({
      code: 'gpu_evidence_too_large',
    });
    handler = (_, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.write(big);
      res.end(big);
    };
    expect(await rejection(provider.collect(new Uint8Array(32)))).toMatchObject({
      code: 'gpu_evidence_too_large',
    });
  });

  it('an unreachable service is a 503', async () => {
    const error = await rejection(
      new HttpGpuEvidenceProvider({
        url: 'http://127.0.0.1:9',
        fetch: async () => {
          throw new TypeError('fetch failed');
        },
      }).collect(new Uint8Array(32)),
    );
    expect(error).toMatchObject({ status: 503, code: 'gpu_evidence_unavailable' });
  });

  it('times out with a 503 and aborts the request', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let aborted = false;
      handler = (req) => {
        req.on('close', () => {
          aborted = true;
        });
      };
      const pending = rejection(
        new HttpGpuEvidenceProvider({ url, timeoutMs: 1000 }).collect(new Uint8Array(32)),
      );
      await vi.advanceTimersByTimeAsync(1001);
      expect(await pending).toMatchObject({ status: 503, code: 'gpu_evidence_timeout' });
      await vi.waitUntil(() => aborted);
      expect(aborted).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('honours the caller abort signal', async () => {
    handler = () => undefined;
    const controller = new AbortController();
    const pending = rejection(
      new HttpGpuEvidenceProvider({ url }).collect(new Uint8Array(32), controller.signal),
    );
    controller.abort();
    expect(await pending).toMatchObject({ status: 503, code: 'gpu_evidence_aborted' });
  });
});
