import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/bytes/index.js';
import { buildReportData } from '../../src/tdx/index.js';
import {
  GeneratedTlsSource,
  pemCertificates,
  spkiSha256,
  TlsConfigError,
  tlsIdentity,
} from '../../src/tls/index.js';
import { sharedFixtures } from '../paths.js';
import { makePair, opensslChain, tempDir } from './certs.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** NEAR AI's published answer with include_tls_fingerprint=true (attestation-fixtures, e2e set). */
const near = JSON.parse(
  readFileSync(
    sharedFixtures(
      'e2e/nearcloud_qwen_qwen3.5-122b-a10b_20260629_020657/responses/0001_cloud-api.near.ai_v1_attestation_report.body',
    ),
    'utf8',
  ),
) as {
  tls_certificate: string;
  gateway_attestation: {
    signing_address: string;
    signing_algo: string;
    report_data: string;
    request_nonce: string;
    tls_cert_fingerprint: string;
  };
};

describe('the TLS binding, against NEAR AI published data', () => {
  it('tls_cert_fingerprint is the sha256 of the tls_certificate leaf SPKI', () => {
    const leaf = pemCertificates(near.tls_certificate)[0] as string;
    expect(toHex(spkiSha256(new X509Certificate(leaf)))).toBe(near.gateway_attestation.tls_cert_fingerprint);
  });

  it('report_data = sha256(ed25519 key ‖ fingerprint) ‖ nonce, as in NEAR’s gateway quote', () => {
    const g = near.gateway_attestation;
    expect(g.signing_algo).toBe('ed25519');
    const reportData = buildReportData({
      algo: 'ed25519',
      publicKey: Buffer.from(g.signing_address, 'hex'),
      nonce: Buffer.from(g.request_nonce, 'hex'),
      tlsSpkiSha256: Buffer.from(g.tls_cert_fingerprint, 'hex'),
    });
    expect(toHex(reportData)).toBe(g.report_data);
  });

  it('ecdsa binds the 20-byte address, unpadded (NEAR inference-proxy build_report_data)', () => {
    const address = Buffer.alloc(20, 0xab);
    const fingerprint = Buffer.alloc(32, 0xcd);
    const nonce = Buffer.alloc(32, 0xef);
    const expected = execFileSync('openssl', ['dgst', '-sha256', '-r'], {
      input: Buffer.concat([address, fingerprint]),
    })
      .toString()
      .split(' ')[0];
    const reportData = buildReportData({ algo: 'ecdsa', address, nonce, tlsSpkiSha256: fingerprint });
    expect(toHex(reportData.subarray(0, 32))).toBe(expected);
    expect(Buffer.from(reportData.subarray(32))).toEqual(nonce);
    // Without the flag the layout is the default one.
    expect(toHex(buildReportData({ algo: 'ecdsa', address, nonce }).subarray(0, 32))).toBe(
      `${'ab'.repeat(20)}${'00'.repeat(12)}`,
    );
    expect(() =>
      buildReportData({ algo: 'ecdsa', address, nonce, tlsSpkiSha256: new Uint8Array(31) }),
    ).toThrow(/tlsSpkiSha256/);
  });
});

describe('tlsIdentity', () => {
  it('computes the SPKI hash openssl computes, for a CA-issued chain, and keeps the chain', () => {
    const { chain, key, spkiSha256: expected } = opensslChain(tmp.dir);
    const identity = tlsIdentity({
      source: 'file',
      certificate: chain,
      key,
      certificateOrigin: 'test',
      now: new Date(),
    });
    expect(identity.fingerprint).toBe(expected);
    expect(pemCertificates(identity.certificate)).toHaveLength(2);
    expect(identity.leaf.subject).toContain('CN=localhost');
  });

  it('refuses an expired certificate, one not yet valid, a mismatched key, and garbage, naming the origin only', async () => {
    const a = await makePair();
    const b = await makePair();
    const now = new Date();
    const input = { source: 'file', certificateOrigin: 'TLS_CERT_PATH (/x)', keyOrigin: 'TLS_KEY_PATH (/y)' };
    const later = new Date(now.getTime() + 11 * 365 * 24 * 3600 * 1000);
    expect(() => tlsIdentity({ ...input, certificate: a.cert, key: a.key, now: later })).toThrow(
      /TLS_CERT_PATH \(\/x\): certificate expired at 20/,
    );
    const earlier = new Date(now.getTime() - 2 * 3600 * 1000);
    expect(() => tlsIdentity({ ...input, certificate: a.cert, key: a.key, now: earlier })).toThrow(
      /not valid before/,
    );
    const mismatch = (() => {
      try {
        tlsIdentity({ ...input, certificate: a.cert, key: b.key, now });
      } catch (error) {
        return error as Error;
      }
      return undefined;
    })();
    expect(mismatch).toBeInstanceOf(TlsConfigError);
    expect(mismatch?.message).toBe(
      "TLS_KEY_PATH (/y): the private key does not match the certificate's public key",
    );
    expect(mismatch?.message).not.toContain('PRIVATE');
    expect(() => tlsIdentity({ ...input, certificate: 'nope', now })).toThrow(/no PEM certificate found/);
    expect(() => tlsIdentity({ ...input, certificate: a.cert, key: 'not a key', now })).toThrow(
      /TLS_KEY_PATH \(\/y\): not a PEM private key/,
    );
    const broken = a.cert.replace(/MI/, 'XX');
    expect(() => tlsIdentity({ ...input, certificate: broken, now })).toThrow(/does not parse/);
  });
});

describe('GeneratedTlsSource', () => {
  it('makes a P-256 key in memory and a self-signed server certificate for the hostnames', async () => {
    const identity = await new GeneratedTlsSource({
      hostnames: ['sidecar.example', '127.0.0.1', '::1'],
    }).load();
    const cert = identity.leaf;
    expect(cert.subject).toBe('CN=sidecar.example');
    expect(cert.issuer).toBe(cert.subject);
    expect(cert.subjectAltName).toBe('DNS:sidecar.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(cert.ca).toBe(false);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(identity.key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    // openssl reads it the same way: CA:FALSE, digitalSignature, serverAuth.
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], {
      input: identity.certificate,
    }).toString();
    expect(text).toContain('CA:FALSE');
    expect(text).toContain('Digital Signature');
    expect(text).toContain('TLS Web Server Authentication');
    // Two starts, two keys.
    const again = await new GeneratedTlsSource({ hostnames: ['sidecar.example'] }).load();
    expect(again.fingerprint).not.toBe(identity.fingerprint);
  });
});
