import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/bytes/index.js';
import { loadConfig } from '../../src/config/index.js';
import { buildReportData, parseQuote } from '../../src/tdx/index.js';
import { FileTlsSource, type TlsIdentity, TlsPeerChannel, type TlsSource } from '../../src/tls/index.js';
import { startTestSidecar } from '../e2e/harness.js';
import { makePair, opensslChain, tempDir } from './certs.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

type Report = Record<string, unknown> & {
  signing_address: string;
  signing_public_key: string;
  request_nonce: string;
  intel_quote: string;
  report_data: string;
  tls_cert_fingerprint?: string;
  tls_certificate?: string;
  all_attestations: Array<Record<string, unknown>>;
};

const json = (body: Uint8Array): Report => JSON.parse(Buffer.from(body).toString('utf8')) as Report;

/** Wraps a FileTlsSource so a test can await the reload it reports (no sleeping). */
class ObservedSource implements TlsSource {
  readonly kind;
  readonly terminates;
  private waiters: Array<(e: { identity?: TlsIdentity; error?: Error }) => void> = [];
  constructor(private readonly inner: FileTlsSource) {
    this.kind = inner.kind;
    this.terminates = inner.terminates;
  }
  load() {
    return this.inner.load();
  }
  watch(onIdentity: (i: TlsIdentity) => void, onError: (e: Error) => void) {
    return this.inner.watch(
      (identity) => {
        onIdentity(identity);
        for (const w of this.waiters.splice(0)) w({ identity });
      },
      (error) => {
        onError(error);
        for (const w of this.waiters.splice(0)) w({ error });
      },
    );
  }
  next(): Promise<{ identity?: TlsIdentity; error?: Error }> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** The raw 64-byte report_data inside the report's quote. */
const quoteReportData = (report: Report): string =>
  toHex(parseQuote(Buffer.from(report.intel_quote, 'hex')).report.reportData);

describe('the sidecar terminating TLS with TLS_CERT_PATH + TLS_KEY_PATH', () => {
  it('binds the certificate of the very connection, reloads renewals, keeps the old pair on a bad one', async () => {
    const a = await makePair();
    const b = await makePair();
    const c = await makePair();
    const certPath = tmp.write('sidecar.crt', a.cert);
    const keyPath = tmp.write('sidecar.key', a.key);
    const source = new ObservedSource(new FileTlsSource({ certPath, keyPath, pollIntervalMs: 50 }));
    const sidecar = await startTestSidecar(
      { TLS_CERT_PATH: certPath, TLS_KEY_PATH: keyPath },
      { tls: source },
    );
    const connections: unknown[] = [];
    sidecar.server.on('secureConnection', (s) => connections.push(s));
    const old = new TlsPeerChannel();
    try {
      expect(sidecar.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      for (const algo of ['ecdsa', 'ed25519'] as const) {
        const nonce = randomBytes(32);
        const answer = await old.request(
          `${sidecar.url}/v1/attestation/report?include_tls_fingerprint=true&nonce=${toHex(nonce)}&signing_algo=${algo}`,
        );
        expect(answer.status).toBe(200);
        const report = json(answer.body);
        expect(answer.peer.fingerprint).toBe(a.identity.fingerprint);
        expect(report.tls_cert_fingerprint).toBe(a.identity.fingerprint);
        expect(report.all_attestations[0]?.['tls_cert_fingerprint']).toBe(a.identity.fingerprint);
        expect(report.tls_certificate).toBe(a.cert);
        const signer = Buffer.from(
          algo === 'ecdsa' ? report.signing_address.slice(2) : report.signing_address,
          'hex',
        );
        const expected =
          algo === 'ecdsa'
            ? buildReportData({ algo, address: signer, nonce, tlsSpkiSha256: a.identity.spkiSha256 })
            : buildReportData({ algo, publicKey: signer, nonce, tlsSpkiSha256: a.identity.spkiSha256 });
        expect(quoteReportData(report)).toBe(toHex(expected));
        expect(report.report_data).toBe(toHex(expected));
      }
      // Keep-alive: those requests shared one TLS connection.
      expect(connections).toHaveLength(1);

      // Without the flag (or with false) nothing changes.
      for (const query of ['', '&include_tls_fingerprint=false']) {
        const nonce = randomBytes(32);
        const plain = json(
          (await old.request(`${sidecar.url}/attestation/report?nonce=${toHex(nonce)}${query}`)).body,
        );
        expect(plain.tls_cert_fingerprint).toBeUndefined();
        expect(plain.tls_certificate).toBeUndefined();
        expect(plain.report_data).toBe(
          `${plain.signing_address.slice(2).toLowerCase()}${'00'.repeat(12)}${toHex(nonce)}`,
        );
      }

      // The cached (no-nonce) report: one entry per flag value.
      const cachedPlain = json((await old.request(`${sidecar.url}/attestation/report`)).body);
      const cachedTls = json(
        (await old.request(`${sidecar.url}/attestation/report?include_tls_fingerprint=true`)).body,
      );
      expect(cachedPlain.tls_cert_fingerprint).toBeUndefined();
      expect(cachedTls.tls_cert_fingerprint).toBe(a.identity.fingerprint);
      expect(cachedTls.request_nonce).not.toBe(cachedPlain.request_nonce);
      const again = json(
        (await old.request(`${sidecar.url}/attestation/report?include_tls_fingerprint=true`)).body,
      );
      expect(again.request_nonce).toBe(cachedTls.request_nonce);

      // Renewal: files replaced by pair B.
      const reloaded = source.next();
      writeFileSync(certPath, b.cert);
      writeFileSync(keyPath, b.key);
      let event = await reloaded;
      while (event.identity === undefined) event = await source.next();
      expect(event.identity.fingerprint).toBe(b.identity.fingerprint);
      // A new connection presents and binds B; the connection opened before still shows and binds A.
      const fresh = new TlsPeerChannel();
      try {
        const now = await fresh.request(`${sidecar.url}/v1/attestation/report?include_tls_fingerprint=true`);
        expect(now.peer.fingerprint).toBe(b.identity.fingerprint);
        expect(json(now.body).tls_cert_fingerprint).toBe(b.identity.fingerprint);
        expect(json(now.body).tls_certificate).toBe(b.cert);
      } finally {
        fresh.close();
      }
      const before = await old.request(`${sidecar.url}/v1/attestation/report?include_tls_fingerprint=true`);
      expect(before.peer.fingerprint).toBe(a.identity.fingerprint);
      expect(json(before.body).tls_cert_fingerprint).toBe(a.identity.fingerprint);

      // A bad pair (B's certificate with C's key) is not adopted; a log line says why.
      const refused = source.next();
      writeFileSync(keyPath, c.key);
      expect((await refused).error?.message).toContain('does not match');
      const later = new TlsPeerChannel();
      try {
        const still = await later.request(`${sidecar.url}/health`);
        expect(still.peer.fingerprint).toBe(b.identity.fingerprint);
      } finally {
        later.close();
      }
      const line = sidecar.logs.find((l) => l.includes('keeping the previous certificate'));
      expect(line).toContain('does not match');
      expect(line).toContain(b.identity.fingerprint);
      expect(sidecar.logs.join('')).not.toContain('PRIVATE KEY');
    } finally {
      old.close();
      await sidecar.close();
    }
  });

  it('speaks TLS 1.2 and 1.3 only, and HTTP/1.1 (ALPN)', async () => {
    const a = await makePair();
    const sidecar = await startTestSidecar({
      TLS_CERT_PATH: tmp.write('v.crt', a.cert),
      TLS_KEY_PATH: tmp.write('v.key', a.key),
    });
    const port = Number(new URL(sidecar.url).port);
    const handshake = (options: object) =>
      new Promise<{ protocol: string | null; alpn: string | false | null } | Error>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options }, () => {
          resolve({ protocol: socket.getProtocol(), alpn: socket.alpnProtocol });
          socket.end();
        });
        socket.on('error', (error) => resolve(error));
      });
    try {
      expect(await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).toMatchObject({
        protocol: 'TLSv1.2',
      });
      expect(await handshake({ ALPNProtocols: ['h2', 'http/1.1'] })).toMatchObject({
        protocol: 'TLSv1.3',
        alpn: 'http/1.1',
      });
      expect(await handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })).toBeInstanceOf(Error);
    } finally {
      await sidecar.close();
    }
  });

  it('refuses to start with an expired certificate or a key that is not its own', async () => {
    const expired = await makePair(['localhost'], new Date(Date.UTC(2010, 0, 1)));
    const a = await makePair();
    const b = await makePair();
    const cases: Array<[Record<string, string>, RegExp]> = [
      [
        {
          TLS_CERT_PATH: tmp.write('old.crt', expired.cert),
          TLS_KEY_PATH: tmp.write('old.key', expired.key),
        },
        /^TLS_CERT_PATH \(.*old\.crt\): certificate expired at 2019-12-\d\dT/,
      ],
      [
        { TLS_CERT_PATH: tmp.write('a.crt', a.cert), TLS_KEY_PATH: tmp.write('b.key', b.key) },
        /^TLS_KEY_PATH \(.*b\.key\): the private key does not match the certificate's public key$/,
      ],
    ];
    for (const [env, message] of cases) {
      await expect(startTestSidecar(env)).rejects.toThrow(message);
    }
  });
});

describe('include_tls_fingerprint without a certificate, and the certificate-only layout', () => {
  it('no TLS configured: the flag is 400 tls_not_configured; a bad value is 400 too', async () => {
    const sidecar = await startTestSidecar();
    try {
      const get = async (query: string) => {
        const res = await fetch(`${sidecar.url}/v1/attestation/report?${query}`);
        return { status: res.status, body: (await res.json()) as { error: { code: string; param: string } } };
      };
      expect(await get('include_tls_fingerprint=true')).toMatchObject({
        status: 400,
        body: { error: { code: 'tls_not_configured', param: 'include_tls_fingerprint' } },
      });
      expect(await get('include_tls_fingerprint=yes')).toMatchObject({
        status: 400,
        body: { error: { code: 'invalid_include_tls_fingerprint' } },
      });
      expect((await fetch(`${sidecar.url}/attestation/report?include_tls_fingerprint=false`)).status).toBe(
        200,
      );
    } finally {
      await sidecar.close();
    }
  });

  it('TLS_CERT_PATH alone: plain HTTP, and the report binds that (CA-issued) certificate', async () => {
    const { chain, spkiSha256 } = opensslChain(tmp.dir);
    const sidecar = await startTestSidecar({ TLS_CERT_PATH: tmp.write('nginx.crt', chain) });
    try {
      expect(sidecar.url).toMatch(/^http:\/\//);
      const body = await new Promise<string>((resolve, reject) => {
        httpRequest(`${sidecar.url}/v1/attestation/report?include_tls_fingerprint=true`, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
          });
          res.on('end', () => resolve(text));
        })
          .on('error', reject)
          .end();
      });
      const report = JSON.parse(body) as Report;
      expect(report.tls_cert_fingerprint).toBe(spkiSha256);
      expect(report.tls_certificate).toBe(chain);
    } finally {
      await sidecar.close();
    }
  });
});

describe('TLS configuration rules', () => {
  const base = { TLS_HOSTNAMES: 'localhost' };
  it('derives the mode and names the variable to fix', () => {
    expect(loadConfig({}).tlsMode).toBe('off');
    expect(loadConfig({ TLS_CERT_PATH: '/c' }).tlsMode).toBe('bind');
    expect(loadConfig({ TLS_CERT_PATH: '/c', TLS_KEY_PATH: '/k' }).tlsMode).toBe('file');
    expect(loadConfig({ TLS_KEY_SOURCE: 'generate', ...base }).tlsMode).toBe('generate');
    expect(loadConfig({ TLS_KEY_SOURCE: 'dstack' }).tlsMode).toBe('dstack');
    expect(loadConfig({ TLS_KEY_SOURCE: 'tapp', TAPP_APP_ID: 'app' }).tlsMode).toBe('tapp');
    expect(loadConfig({ TLS_HOSTNAMES: ' a.example , 10.0.0.1,::1 ' }).TLS_HOSTNAMES).toEqual([
      'a.example',
      '10.0.0.1',
      '::1',
    ]);
    const bad: Array<[Record<string, string>, string]> = [
      [{ TLS_KEY_PATH: '/k' }, 'TLS_CERT_PATH: required with TLS_KEY_PATH'],
      [{ TLS_KEY_SOURCE: 'file', TLS_CERT_PATH: '/c' }, 'TLS_KEY_PATH: TLS_KEY_SOURCE=file needs both'],
      [
        { TLS_KEY_SOURCE: 'generate', TLS_CERT_PATH: '/c' },
        'TLS_CERT_PATH: not used with TLS_KEY_SOURCE=generate',
      ],
      [{ TLS_KEY_SOURCE: 'tapp' }, 'TAPP_APP_ID: required when TLS_KEY_SOURCE=tapp'],
      [{ TLS_KEY_SOURCE: 'acme' }, 'TLS_KEY_SOURCE'],
      [{ TLS_HOSTNAMES: 'bad host' }, 'TLS_HOSTNAMES: expected comma-separated host names or IP addresses'],
    ];
    for (const [env, message] of bad) expect(() => loadConfig(env)).toThrow(message);
  });
});
