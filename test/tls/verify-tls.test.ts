import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/bytes/index.js';
import { verifyCommand } from '../../src/cli/verify.js';
import { TlsPeerChannel } from '../../src/tls/index.js';
import { type VerificationResult, verifyProvider, verifyReport } from '../../src/verifier/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { makePair, startTerminator, tempDir } from './certs.js';

const tmp = tempDir();
const statusOf = (result: VerificationResult, id: string) => result.checks.find((c) => c.id === id)?.status;
const detailOf = (result: VerificationResult, id: string) => result.checks.find((c) => c.id === id)?.detail;
const failed = (result: VerificationResult) =>
  result.checks.filter((c) => c.status === 'fail').map((c) => c.id);

let terminating: TestSidecar;
beforeAll(async () => {
  // The sidecar serving HTTPS itself with an in-memory key.
  terminating = await startTestSidecar({ TLS_KEY_SOURCE: 'generate', TLS_HOSTNAMES: 'localhost,127.0.0.1' });
});
afterAll(async () => {
  await terminating.close();
  tmp.cleanup();
});

describe('verifyProvider over https against the sidecar', () => {
  it.each(['ecdsa', 'ed25519'] as const)(
    '%s: tls.fingerprint and the TLS binding pass, completions go over the pinned connection',
    async (algo) => {
      const result = await verifyProvider({
        baseUrl: terminating.url,
        allowSimulated: true,
        offline: true,
        signingAlgo: algo,
      });
      expect(failed(result)).toEqual([]);
      expect(statusOf(result, 'tls.fingerprint')).toBe('pass');
      expect(detailOf(result, 'tdx.report-data')).toContain(
        `NEAR tls_cert_fingerprint scheme: sha256(${algo === 'ecdsa' ? 'address' : 'public key'} ‖ tls_cert_fingerprint) ‖ nonce`,
      );
      for (const id of ['signature.json.signer', 'signature.stream.signer']) {
        expect(statusOf(result, id)).toBe('pass');
        // The record came with the answer over the pinned connection, and equals the lookup.
        expect(detailOf(result, id)).toContain('X-Teeml-Signature trailer, equal to the lookup');
      }
    },
  );

  it('over plain HTTP the TLS check is skipped, with the reason', async () => {
    const plain = await startTestSidecar();
    try {
      const result = await verifyProvider({
        baseUrl: plain.url,
        allowSimulated: true,
        offline: true,
        completion: false,
      });
      expect(result.checks.find((c) => c.id === 'tls.fingerprint')).toMatchObject({
        status: 'skip',
        detail: 'plain HTTP: there is no TLS connection whose certificate could be bound',
      });
    } finally {
      await plain.close();
    }
  });

  it('the CLI: verify https://… checks the binding by default; --no-tls-binding skips it', async () => {
    const run = async (argv: string[]) => {
      const stdout = new PassThrough();
      let out = '';
      stdout.on('data', (c: Buffer) => {
        out += c.toString();
      });
      const code = await verifyCommand(argv, stdout, new PassThrough());
      return { code, out };
    };
    const strict = await run([
      terminating.url,
      '--allow-simulated',
      '--offline',
      '--no-completion',
      '--json',
    ]);
    expect(strict.code).toBe(0);
    const checks = (JSON.parse(strict.out) as { checks: { id: string; status: string }[] }).checks;
    expect(checks.find((c) => c.id === 'tls.fingerprint')?.status).toBe('pass');
    const loose = await run([
      terminating.url,
      '--allow-simulated',
      '--offline',
      '--no-completion',
      '--no-tls-binding',
    ]);
    expect(loose.code).toBe(0);
    expect(loose.out).toMatch(/SKIP {2}tls\.fingerprint .*not asked for \(--no-tls-binding\)/);
  });
});

describe('a certificate swapped behind the sidecar’s back', () => {
  it('is caught: tls.fingerprint fails, and no completion is sent to the unattested key', async () => {
    const a = await makePair();
    const b = await makePair();
    const sidecar = await startTestSidecar({ TLS_CERT_PATH: tmp.write('bound.crt', a.cert) });
    const front = await startTerminator(a.cert, a.key, sidecar.url);
    try {
      const honest = await verifyProvider({ baseUrl: front.url, allowSimulated: true, offline: true });
      expect(failed(honest)).toEqual([]);
      expect(statusOf(honest, 'tls.fingerprint')).toBe('pass');
      const sentHonest = front.posts.length;
      expect(sentHonest).toBe(2);

      // The terminator now presents B (a MITM, or a certificate replaced without the sidecar knowing).
      front.server.setSecureContext({ cert: b.cert, key: b.key });
      front.server.closeAllConnections();
      // With the model named, the verifier really tries to send the completions.
      const swapped = await verifyProvider({
        baseUrl: front.url,
        allowSimulated: true,
        offline: true,
        model: 'teeml-demo',
      });
      expect(statusOf(swapped, 'tls.fingerprint')).toBe('fail');
      expect(detailOf(swapped, 'tls.fingerprint')).toBe(
        `the live certificate's SPKI sha256 is ${b.identity.fingerprint}, the report binds ${a.identity.fingerprint}`,
      );
      // The report itself is internally consistent (it binds A): only the live check catches it.
      expect(statusOf(swapped, 'tdx.report-data')).toBe('pass');
      for (const id of ['signature.json.text', 'signature.stream.text']) {
        expect(statusOf(swapped, id)).toBe('fail');
        expect(detailOf(swapped, id)).toContain("the server's TLS certificate is not the attested one");
      }
      expect(front.posts.length).toBe(sentHonest);
    } finally {
      await front.close();
      await sidecar.close();
    }
  });
});

describe('verifyReport on TLS-bound reports', () => {
  it('a tls_cert_fingerprint that report_data does not bind fails tdx.report-data', async () => {
    const nonce = randomBytes(32);
    const channel = new TlsPeerChannel();
    try {
      const answer = await channel.request(
        `${terminating.url}/v1/attestation/report?include_tls_fingerprint=true&nonce=${toHex(nonce)}`,
      );
      const report = JSON.parse(Buffer.from(answer.body).toString()) as Record<string, unknown>;
      const ctx = { nonce, nowSeconds: Math.floor(Date.now() / 1000), allowSimulated: true, offline: true };
      expect(statusOf(await verifyReport(report, ctx), 'tdx.report-data')).toBe('pass');
      // Another certificate's hash in the JSON: the quote does not bind it.
      const claimed = { ...report, tls_cert_fingerprint: '11'.repeat(32) };
      const result = await verifyReport(claimed, ctx);
      expect(statusOf(result, 'tdx.report-data')).toBe('fail');
      expect(detailOf(result, 'tdx.report-data')).toBe(
        'report_data[0, 32) is not sha256(signing key ‖ tls_cert_fingerprint)',
      );
      // The binding stripped from the JSON: report_data is not the default layout either.
      const { tls_cert_fingerprint: _drop, ...stripped } = report;
      expect(statusOf(await verifyReport(stripped, ctx), 'tdx.report-data')).toBe('fail');
    } finally {
      channel.close();
    }
  });
});
