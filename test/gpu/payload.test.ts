import { describe, expect, it } from 'vitest';
import type { GpuEvidence } from '../../src/gpu/gpu-evidence-provider.js';
import { buildNvidiaPayload, parseNvidiaPayload } from '../../src/gpu/payload.js';
import { blackwell, hopper, NEAR_E2E, PHALA_E2E, readText } from './fixtures.js';

const nonce = new Uint8Array(32).fill(0xab);
const gpu = (index: number, arch: GpuEvidence['arch'] = 'HOPPER'): GpuEvidence => {
  const real = arch === 'HOPPER' ? hopper() : blackwell();
  return { index, arch, evidence: real.evidence, certificateChain: real.certificateChain };
};

describe('buildNvidiaPayload', () => {
  it('writes exactly the docs/protocol.md shape and key order', () => {
    const g0 = gpu(0);
    const text = buildNvidiaPayload(nonce, [g0, gpu(1)]);
    const certificate = Buffer.from(g0.certificateChain).toString('base64');
    const evidence = Buffer.from(g0.evidence).toString('base64');
    expect(
      text.startsWith(
        `{"nonce":"${'ab'.repeat(32)}","evidence_list":[{"certificate":"${certificate}","evidence":"${evidence}","arch":"HOPPER"},{`,
      ),
    ).toBe(true);
    expect(text.endsWith('}],"arch":"HOPPER"}')).toBe(true);
    expect(Object.keys(JSON.parse(text))).toEqual(['nonce', 'evidence_list', 'arch']);
  });

  it('round-trips through parseNvidiaPayload', () => {
    const gpus = [gpu(0), gpu(1), gpu(2)];
    const parsed = parseNvidiaPayload(buildNvidiaPayload(nonce, gpus));
    expect(parsed.nonce).toEqual(nonce);
    expect(parsed.arch).toBe('HOPPER');
    expect(parsed.evidenceList.map((e) => e.evidence)).toEqual(gpus.map((g) => g.evidence));
    expect(parsed.evidenceList.map((e) => e.certificateChain)).toEqual(gpus.map((g) => g.certificateChain));
  });

  it('says BLACKWELL for Blackwell GPUs', () => {
    expect(JSON.parse(buildNvidiaPayload(nonce, [gpu(0, 'BLACKWELL')])).arch).toBe('BLACKWELL');
  });

  it('refuses no GPUs, out-of-order GPUs, mixed architectures and a short nonce', () => {
    expect(() => buildNvidiaPayload(nonce, [])).toThrow(/at least one GPU/);
    expect(() => buildNvidiaPayload(nonce, [gpu(1), gpu(0)])).toThrow(/index order/);
    expect(() => buildNvidiaPayload(nonce, [gpu(0), gpu(1, 'BLACKWELL')])).toThrow(/single architecture/);
    expect(() => buildNvidiaPayload(nonce.slice(1), [gpu(0)])).toThrow(/"nonce"/);
  });
});

describe('parseNvidiaPayload', () => {
  it('parses the NEAR e2e payload (sorted keys, per-entry nonce, NUL-padded PEM)', () => {
    const parsed = parseNvidiaPayload(readText(`${NEAR_E2E}/derived/nras_request_body.json`));
    expect(Buffer.from(parsed.nonce).toString('hex')).toBe(
      'e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609',
    );
    expect(parsed.evidenceList).toHaveLength(8);
    expect(parsed.evidenceList[0]?.certificateChain.startsWith('-----BEGIN CERTIFICATE-----')).toBe(true);
  });

  it('parses the Phala payload (no per-entry nonce)', () => {
    expect(
      parseNvidiaPayload(readText(`${PHALA_E2E}/derived/nras_request_body.json`)).evidenceList,
    ).toHaveLength(8);
  });

  const valid = () =>
    JSON.parse(buildNvidiaPayload(nonce, [gpu(0)])) as Record<string, unknown> & {
      evidence_list: Record<string, unknown>[];
    };

  it.each([
    ['not JSON', () => '{', /not valid JSON/],
    ['a JSON array', () => '[]', /nvidia_payload: ""/],
    ['an upper-case nonce', () => JSON.stringify({ ...valid(), nonce: 'AB'.repeat(32) }), /"nonce"/],
    ['a short nonce', () => JSON.stringify({ ...valid(), nonce: 'ab' }), /"nonce"/],
    ['an empty list', () => JSON.stringify({ ...valid(), evidence_list: [] }), /"evidence_list"/],
    ['an unknown arch', () => JSON.stringify({ ...valid(), arch: 'AMPERE' }), /"arch"/],
    ['an unknown top-level key', () => JSON.stringify({ ...valid(), extra: 1 }), /nvidia_payload/],
    [
      'bad base64 evidence',
      () => {
        const v = valid();
        v.evidence_list[0]!['evidence'] = 'not base64!';
        return JSON.stringify(v);
      },
      /"evidence_list\.0\.evidence"/,
    ],
    [
      'an entry nonce that differs',
      () => {
        const v = valid();
        v.evidence_list[0]!['nonce'] = 'cd'.repeat(32);
        return JSON.stringify(v);
      },
      /"evidence_list\.0\.nonce" differs/,
    ],
    [
      'an entry arch that differs',
      () => {
        const v = valid();
        v.evidence_list[0]!['arch'] = 'BLACKWELL';
        return JSON.stringify(v);
      },
      /"evidence_list\.0\.arch" differs/,
    ],
  ])('rejects %s', (_, text, message) => {
    expect.assertions(1);
    expect(() => parseNvidiaPayload(text())).toThrow(message);
  });

  it('accepts a v4 body with claims_version', () => {
    expect(
      parseNvidiaPayload(JSON.stringify({ ...valid(), claims_version: '3.0' })).evidenceList,
    ).toHaveLength(1);
  });
});
