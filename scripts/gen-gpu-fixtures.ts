/**
 * Regenerates attestation-fixtures/gpu/: a throwaway 5-level P-384 certificate chain shaped like
 * NVIDIA's (root → identity → provisioner ICA → GSP BROM → GSP FMC leaf), the leaf's private key,
 * the root's SHA-256 fingerprint and a signed SPDM evidence template.
 *
 *   npx tsx scripts/gen-gpu-fixtures.ts            # writes attestation-fixtures/gpu/
 *   npx tsx scripts/gen-gpu-fixtures.ts --out DIR  # writes somewhere else (tests use this)
 *
 * Output is byte-for-byte deterministic: every key is derived from a fixed public label, and every
 * signature here uses RFC 6979 deterministic ECDSA (@noble/curves), so a rerun reproduces the
 * committed files exactly and a test checks that it does. The keys are public by construction:
 * TEST ONLY, never trusted by production code (which pins only NVIDIA's root).
 *
 * node:crypto cannot issue X.509 certificates, so a small DER builder (X.509: RFC 5280) is below.
 * The evidence copies the *shape* of the public nvtrust H100 sample (block count and sizes, opaque
 * TLV types and sizes: docs/platforms.md, SPDM layout) from ../shared/attestation-fixtures; every value
 * is synthetic, except the driver and VBIOS version strings, which are plain version numbers.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { p384 } from '@noble/curves/nist.js';
import { parseGpuEvidence } from '../src/gpu/evidence.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
export const DEFAULT_OUT = join(repoRoot, 'attestation-fixtures', 'gpu');
export const SHAPE_SOURCE = resolve(
  repoRoot,
  '../shared/attestation-fixtures/nvidia/nvtrust-hopper-sample/hopperAttestationReport.txt',
);

/** The nonce the committed template is signed for; listed as a sample nonce nowhere real. */
export const TEMPLATE_NONCE = createHash('sha256')
  .update('teeml-sidecar synthetic GPU evidence template')
  .digest();

export const FILES = {
  chain: 'synthetic-cert-chain.pem',
  leafKey: 'synthetic-leaf-key.TEST-ONLY.pem',
  rootFingerprint: 'synthetic-root.sha256',
  evidence: 'synthetic-evidence-template.hex',
} as const;

// ---- DER (X.690) -------------------------------------------------------------------------------

const concat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

const tlv = (tag: number, content: Uint8Array): Uint8Array => {
  const n = content.length;
  let len: Uint8Array;
  if (n < 0x80) len = Uint8Array.of(n);
  else if (n < 0x100) len = Uint8Array.of(0x81, n);
  else if (n < 0x10000) len = Uint8Array.of(0x82, n >> 8, n & 0xff);
  else throw new Error('DER: content too long');
  return concat(Uint8Array.of(tag), len, content);
};

const seq = (...items: Uint8Array[]) => tlv(0x30, concat(...items));
const set = (...items: Uint8Array[]) => tlv(0x31, concat(...items));
const explicit = (n: number, inner: Uint8Array) => tlv(0xa0 + n, inner);
const octets = (b: Uint8Array) => tlv(0x04, b);
const bitString = (b: Uint8Array, unused = 0) => tlv(0x03, concat(Uint8Array.of(unused), b));
const utf8 = (s: string) => tlv(0x0c, new TextEncoder().encode(s));
const printable = (s: string) => tlv(0x13, new TextEncoder().encode(s));
const bool = (v: boolean) => tlv(0x01, Uint8Array.of(v ? 0xff : 0));

const uint = (bytes: Uint8Array): Uint8Array => {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const body = bytes.subarray(i);
  return tlv(0x02, (body[0] as number) & 0x80 ? concat(Uint8Array.of(0), body) : body);
};

const oid = (dotted: string): Uint8Array => {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const out = [40 * a + b];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let v = arc >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Uint8Array.from(out));
};

/** UTCTime before 2050, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). */
const time = (iso: string): Uint8Array => {
  const d = new Date(iso);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  const year = d.getUTCFullYear();
  const enc = (s: string) => new TextEncoder().encode(s);
  return year < 2050 ? tlv(0x17, enc(`${p(year % 100)}${rest}`)) : tlv(0x18, enc(`${p(year, 4)}${rest}`));
};

const OID = {
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  cn: '2.5.4.3',
  o: '2.5.4.10',
  c: '2.5.4.6',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
};

const name = (cn: string): Uint8Array =>
  seq(
    set(seq(oid(OID.c), printable('XX'))),
    set(seq(oid(OID.o), utf8('teeml-sidecar test fixtures'))),
    set(seq(oid(OID.cn), utf8(cn))),
  );

// ---- keys ----------------------------------------------------------------------------------------

export interface TestKey {
  secret: Uint8Array;
  /** Uncompressed SEC1 point, 97 bytes. */
  point: Uint8Array;
  keyObject: KeyObject;
  spki: Uint8Array;
}

const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');

/** A P-384 key derived from a public label: deterministic and, by construction, not secret. */
export const deriveKey = (label: string): TestKey => {
  const secret = new Uint8Array(
    createHash('sha384').update(`teeml-sidecar TEST-ONLY key: ${label}`).digest(),
  );
  if (!p384.utils.isValidSecretKey(secret)) throw new Error(`derived key for ${label} is out of range`);
  const point = p384.getPublicKey(secret, false);
  const keyObject = createPrivateKey({
    key: {
      kty: 'EC',
      crv: 'P-384',
      d: b64url(secret),
      x: b64url(point.subarray(1, 49)),
      y: b64url(point.subarray(49, 97)),
    },
    format: 'jwk',
  });
  const spki = new Uint8Array(createPublicKey(keyObject).export({ type: 'spki', format: 'der' }));
  return { secret, point, keyObject, spki };
};

// ---- certificates ------------------------------------------------------------------------------

const signDer = (message: Uint8Array, key: TestKey): Uint8Array => {
  // RFC 6979 deterministic ECDSA over SHA-384 (noble hashes the message with the curve's hash).
  const compact = p384.sign(message, key.secret);
  return p384.Signature.fromBytes(compact, 'compact').toBytes('der');
};

interface CertSpec {
  subject: string;
  key: TestKey;
  issuer: { name: string; key: TestKey };
  ca: boolean;
  pathLen?: number;
  notBefore: string;
}

const keyId = (key: TestKey) => new Uint8Array(createHash('sha1').update(key.point).digest());

export const issueCertificate = (spec: CertSpec): Uint8Array => {
  const sigAlg = seq(oid(OID.ecdsaWithSha384));
  const serial = new Uint8Array(
    createHash('sha256').update(`serial: ${spec.subject}`).digest().subarray(0, 16),
  );
  serial[0] = (serial[0] as number) & 0x7f;
  const basic = spec.ca
    ? seq(bool(true), ...(spec.pathLen === undefined ? [] : [tlv(0x02, Uint8Array.of(spec.pathLen))]))
    : seq();
  // keyUsage: CA keyCertSign|cRLSign (bits 5, 6); leaf digitalSignature (bit 0). RFC 5280 4.2.1.3.
  const usage = spec.ca ? bitString(Uint8Array.of(0x06), 1) : bitString(Uint8Array.of(0x80), 7);
  const extensions = seq(
    seq(oid(OID.basicConstraints), bool(true), octets(basic)),
    seq(oid(OID.keyUsage), bool(true), octets(usage)),
    seq(oid(OID.subjectKeyId), octets(octets(keyId(spec.key)))),
    seq(oid(OID.authorityKeyId), octets(seq(tlv(0x80, keyId(spec.issuer.key))))),
  );
  const tbs = seq(
    explicit(0, tlv(0x02, Uint8Array.of(2))),
    uint(serial),
    sigAlg,
    name(spec.issuer.name),
    seq(time(spec.notBefore), time('9999-12-31T23:59:59Z')),
    name(spec.subject),
    spec.key.spki,
    explicit(3, extensions),
  );
  return seq(tbs, sigAlg, bitString(signDer(tbs, spec.issuer.key)));
};

const pem = (der: Uint8Array): string => {
  const lines =
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
};

export const ROOT_NAME = 'SYNTHETIC TEST ROOT – NOT NVIDIA';

/** The chain, leaf first, with the leaf key. Names mirror the real GH100 chain's levels. */
export const buildChain = (): { chainPem: string; rootDer: Uint8Array; leaf: TestKey } => {
  const levels = [
    { name: ROOT_NAME, ca: true, notBefore: '2021-11-05T00:00:00Z' },
    { name: 'SYNTHETIC GH100 Identity (test only)', ca: true, notBefore: '2022-01-12T00:00:00Z' },
    { name: 'SYNTHETIC GH100 Provisioner ICA (test only)', ca: true, notBefore: '2022-03-01T00:00:00Z' },
    { name: 'SYNTHETIC GH100 A01 GSP BROM (test only)', ca: true, notBefore: '2020-10-17T00:00:00Z' },
    { name: 'SYNTHETIC GH100 A01 GSP FMC LF (test only)', ca: false, notBefore: '2020-10-17T00:00:00Z' },
  ];
  const keys = levels.map((l) => deriveKey(l.name));
  const ders = levels.map((level, i) => {
    const issuer = i === 0 ? level : (levels[i - 1] as (typeof levels)[number]);
    return issueCertificate({
      subject: level.name,
      key: keys[i] as TestKey,
      issuer: { name: issuer.name, key: keys[i === 0 ? 0 : i - 1] as TestKey },
      ca: level.ca,
      notBefore: level.notBefore,
    });
  });
  return {
    chainPem: ders.map(pem).reverse().join(''),
    rootDer: ders[0] as Uint8Array,
    leaf: keys[keys.length - 1] as TestKey,
  };
};

// ---- evidence ----------------------------------------------------------------------------------

const filler = (label: string, length: number): Uint8Array => {
  const out = new Uint8Array(length);
  for (let i = 0, block = 0; i < length; block++) {
    const h = createHash('sha384').update(`${label}#${block}`).digest();
    out.set(h.subarray(0, Math.min(h.length, length - i)), i);
    i += h.length;
  }
  return out;
};

const u16 = (n: number) => Uint8Array.of(n & 0xff, n >> 8);

/**
 * SPDM GET_MEASUREMENTS request ‖ MEASUREMENTS response with the block and TLV shape of `shape`
 * (a real report) and synthetic values, signed with `leaf` for `nonce`.
 */
export const buildEvidence = (shape: Uint8Array, leaf: TestKey, nonce: Uint8Array): Uint8Array => {
  const real = parseGpuEvidence(shape);
  const blocks = real.measurementBlocks.map((b) => {
    const value = filler(`measurement ${b.index}`, b.value.length);
    const body =
      b.valueType === undefined ? value : concat(Uint8Array.of(b.valueType), u16(value.length), value);
    return concat(Uint8Array.of(b.index, b.specification), u16(body.length), body);
  });
  const record = concat(...blocks);
  const opaque = concat(
    ...real.opaque.map((f) => {
      let value: Uint8Array;
      if (f.type === 3) value = new TextEncoder().encode('550.90.07\0');
      else if (f.type === 6) value = Uint8Array.of(0x00, 0x9f, 0x00, 0x96, 0x01, 0, 0, 0);
      else value = filler(`opaque ${f.type}`, f.value.length);
      return concat(u16(f.type), u16(value.length), value);
    }),
  );
  const request = concat(Uint8Array.of(0x11, 0xe0, 0x01, 0xff), nonce, Uint8Array.of(real.slot));
  const header = Uint8Array.of(
    0x11,
    0x60,
    0x00,
    real.slot,
    blocks.length,
    record.length & 0xff,
    (record.length >> 8) & 0xff,
    record.length >> 16,
  );
  const signed = concat(request, header, record, filler('responder nonce', 32), u16(opaque.length), opaque);
  return concat(signed, p384.sign(signed, leaf.secret));
};

// ---- files ---------------------------------------------------------------------------------------

const README = `# Synthetic GPU attestation fixtures (TEST ONLY)

Generated by \`npx tsx scripts/gen-gpu-fixtures.ts\`; do not edit by hand. A test regenerates them
into a temporary folder and checks that the result is byte-identical to what is committed here.

**Nothing here is NVIDIA's.** The root is "${ROOT_NAME}". Production code pins only the real
NVIDIA Device Identity CA (SHA-256 \`102bf659…67b48\`); the synthetic root is accepted only where a
caller passes its fingerprint explicitly (simulated mode, tests). A verifier must reject a report
whose evidence chains to it.

| file | what |
|---|---|
| \`${FILES.chain}\` | 5 PEM certificates, **leaf first** (like NVML's attestation cert chain): GSP FMC leaf → GSP BROM → Provisioner ICA → Identity → synthetic root. ECDSA P-384 / SHA-384, valid from 2020–2022 to 9999-12-31, CA flags and key usages as in the real chain. |
| \`${FILES.leafKey}\` | PKCS#8 PEM private key of the leaf. **Throwaway and public**: every key in this chain is derived from a fixed label in the script (SHA-384 of the label), so anyone can recompute it. It exists so the simulated provider and the NVML test double's tests can sign evidence for any nonce. |
| \`${FILES.rootFingerprint}\` | SHA-256 (hex) of the synthetic root's DER: the value to pin in simulated mode. |
| \`${FILES.evidence}\` | Hex of one synthetic evidence report: SPDM 1.1 GET_MEASUREMENTS request (37 B, \`11 e0 01 ff\`, nonce at [4, 36), slot byte) ‖ MEASUREMENTS response (64 DMTF blocks, L = 3520, responder nonce, opaque TLVs) ‖ 96-byte P-384 r‖s signature over SHA-384 of the rest, by the leaf key. Block and TLV types and sizes copy the public nvtrust H100 sample; the values are synthetic (driver TLV 3 = \`550.90.07\`, VBIOS TLV 6 = \`96.00.9F.00.01\`). Signed for the nonce sha256("teeml-sidecar synthetic GPU evidence template"). |

How they are used:

- \`src/gpu/simulated.ts\` loads the chain, the leaf key and the template, writes the caller's nonce at
  [4, 36) and a fresh responder nonce, and re-signs (\`synthesizeGpuEvidence\`), so simulated
  evidence for any nonce passes the local check when (and only when) the synthetic root is pinned.
- Tests of the NVML provider write evidence for their nonce into a temporary folder that the C
  double \`native/doubles/libnvidia-ml.c\` serves (see that file).

Signatures in the committed files use RFC 6979 deterministic ECDSA (@noble/curves), which is what
makes them reproducible; evidence signed at run time uses node:crypto.
`;

export interface GeneratedFiles {
  [name: string]: string;
}

export const generate = (shape: Uint8Array): GeneratedFiles => {
  const { chainPem, rootDer, leaf } = buildChain();
  const evidence = buildEvidence(shape, leaf, TEMPLATE_NONCE);
  return {
    [FILES.chain]: chainPem,
    [FILES.leafKey]: leaf.keyObject.export({ type: 'pkcs8', format: 'pem' }) as string,
    [FILES.rootFingerprint]: `${createHash('sha256').update(rootDer).digest('hex')}\n`,
    [FILES.evidence]: `${Buffer.from(evidence).toString('hex')}\n`,
    'README.md': README,
  };
};

export const readShape = (path = SHAPE_SOURCE): Uint8Array =>
  new Uint8Array(Buffer.from(readFileSync(path, 'utf8').trim(), 'hex'));

const main = (): void => {
  const outFlag = process.argv.indexOf('--out');
  const out = outFlag >= 0 ? resolve(process.argv[outFlag + 1] ?? '') : DEFAULT_OUT;
  mkdirSync(out, { recursive: true });
  for (const [file, text] of Object.entries(generate(readShape()))) {
    writeFileSync(join(out, file), text);
  }
  process.stdout.write(`wrote ${Object.keys(FILES).length + 1} files to ${out}\n`);
};

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main();
