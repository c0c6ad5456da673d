import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { type TlsIdentity, tlsIdentity } from './identity.js';
import type { TlsSource } from './tls-source.js';

export interface GeneratedTlsSourceOptions {
  /** TLS_HOSTNAMES: DNS names or IP addresses; the first is also the subject CN. */
  hostnames: readonly string[];
  now?: () => Date;
  /** Test hook: 16 random bytes for the serial number. */
  random?: (n: number) => Uint8Array;
}

/**
 * The certificate's dates carry no trust here (verifiers trust the attested key, not a CA or a
 * calendar), and the key is new at every start; a long window keeps clients that do check dates
 * from failing against a long-running CVM.
 */
const VALIDITY_MS = 10 * 365 * 24 * 3600 * 1000;
/** Tolerate clients whose clocks are a little behind ours. */
const BACKDATE_MS = 3600 * 1000;

const pem = (label: string, der: ArrayBuffer): string => {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
};

const ipBytes = (ip: string): Uint8Array => {
  if (isIP(ip) === 4) return new Uint8Array(ip.split('.').map(Number));
  // IPv6: expand `::` and write 8 groups of 16 bits.
  const [head = '', tail = ''] = ip.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
};

/**
 * TLS_KEY_SOURCE=generate: an ECDSA P-256 key made in memory at start (WebCrypto) and a self-signed
 * certificate for TLS_HOSTNAMES, built with pkijs. The key never touches disk: it lives in this
 * process, as PEM text for Node's TLS, and dies with it. Trust comes from the attestation report
 * binding the key's SPKI hash, not from a CA.
 *
 * Extensions: subjectAltName (DNS and IP entries), basicConstraints CA:false (critical), keyUsage
 * digitalSignature (critical), extKeyUsage serverAuth (RFC 5280 4.2.1.6, 4.2.1.9, 4.2.1.3, 4.2.1.12).
 */
export class GeneratedTlsSource implements TlsSource {
  readonly kind = 'generate' as const;
  readonly terminates = true;
  private readonly now: () => Date;
  private readonly random: (n: number) => Uint8Array;

  constructor(private readonly options: GeneratedTlsSourceOptions) {
    if (options.hostnames.length === 0) throw new RangeError('"hostnames" must name at least one host');
    this.now = options.now ?? (() => new Date());
    this.random = options.random ?? ((n) => webcrypto.getRandomValues(new Uint8Array(n)));
  }

  async load(): Promise<TlsIdentity> {
    // Loaded only when a certificate is generated.
    const pkijs = await import('pkijs');
    const asn1js = await import('asn1js');
    const subtle = webcrypto.subtle;
    const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
    const keys = (await subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;

    const cert = new pkijs.Certificate();
    cert.version = 2;
    const serial = this.random(16);
    serial[0] = (serial[0] ?? 0) & 0x7f; // positive INTEGER (RFC 5280 4.1.2.2)
    if (serial[0] === 0) serial[0] = 1; // and minimally encoded
    cert.serialNumber = new asn1js.Integer({ valueHex: serial.slice().buffer });
    const [first] = this.options.hostnames;
    const commonName = () =>
      new pkijs.AttributeTypeAndValue({
        type: '2.5.4.3',
        value: new asn1js.Utf8String({ value: first ?? 'teeml-sidecar' }),
      });
    cert.issuer.typesAndValues.push(commonName());
    cert.subject.typesAndValues.push(commonName());
    const now = this.now().getTime();
    cert.notBefore.value = new Date(now - BACKDATE_MS);
    cert.notAfter.value = new Date(now + VALIDITY_MS);
    const altNames = new pkijs.GeneralNames({
      names: this.options.hostnames.map((name) =>
        isIP(name) === 0
          ? new pkijs.GeneralName({ type: 2, value: name })
          : new pkijs.GeneralName({
              type: 7,
              value: new asn1js.OctetString({ valueHex: ipBytes(name).slice().buffer }),
            }),
      ),
    });
    const keyUsage = new asn1js.BitString({ valueHex: new Uint8Array([0x80]).buffer, unusedBits: 7 });
    cert.extensions = [
      new pkijs.Extension({
        extnID: '2.5.29.17',
        critical: false,
        extnValue: altNames.toSchema().toBER(false),
      }),
      new pkijs.Extension({
        extnID: '2.5.29.19',
        critical: true,
        extnValue: new pkijs.BasicConstraints({ cA: false }).toSchema().toBER(false),
      }),
      new pkijs.Extension({ extnID: '2.5.29.15', critical: true, extnValue: keyUsage.toBER(false) }),
      new pkijs.Extension({
        extnID: '2.5.29.37',
        critical: false,
        extnValue: new pkijs.ExtKeyUsage({ keyPurposes: ['1.3.6.1.5.5.7.3.1'] }).toSchema().toBER(false),
      }),
    ];
    await cert.subjectPublicKeyInfo.importKey(keys.publicKey);
    await cert.sign(keys.privateKey, 'SHA-256');
    return tlsIdentity({
      source: this.kind,
      certificate: pem('CERTIFICATE', cert.toSchema().toBER(false)),
      key: pem('PRIVATE KEY', await subtle.exportKey('pkcs8', keys.privateKey)),
      certificateOrigin: 'TLS_KEY_SOURCE=generate',
      now: this.now(),
    });
  }
}
