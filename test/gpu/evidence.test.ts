import { describe, expect, it } from 'vitest';
import { parseGpuEvidence } from '../../src/gpu/evidence.js';
import { blackwell, eightGpu, fourGpu, hopper, invalidSignature, SAMPLE_NONCE } from './fixtures.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('parseGpuEvidence', () => {
  it('parses the nvtrust H100 sample as the README describes it', () => {
    const { evidence } = hopper();
    expect(evidence.length).toBe(4117);
    const parsed = parseGpuEvidence(evidence);
    expect(hex(parsed.nonce)).toBe(SAMPLE_NONCE);
    expect(parsed.slot).toBe(0);
    expect(parsed.measurementBlocks).toHaveLength(64);
    expect(parsed.measurementBlocks.every((b) => b.value.length === 48 && b.specification === 1)).toBe(true);
    expect(parsed.measurementBlocks.map((b) => b.index)).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
    expect(parsed.driverVersion).toBe('550.90.07');
    expect(parsed.vbiosVersion).toBe('96.00.9F.00.01');
    expect(parsed.featureFlag).toBeUndefined();
    expect(parsed.signature).toHaveLength(96);
    expect(parsed.signedBytes).toHaveLength(4117 - 96);
  });

  it('reads driver, VBIOS and FEATURE_FLAG of the other real reports', () => {
    expect(parseGpuEvidence(blackwell().evidence)).toMatchObject({
      driverVersion: '575.32',
      vbiosVersion: '97.00.88.00.0F',
    });
    expect(parseGpuEvidence(invalidSignature().evidence)).toMatchObject({
      driverVersion: '560.00',
      vbiosVersion: '96.00.A5.00.01',
    });
    for (const gpu of [...fourGpu(), ...eightGpu()]) {
      expect(parseGpuEvidence(gpu.evidence)).toMatchObject({
        driverVersion: '590.12',
        vbiosVersion: '96.00.A5.00.01',
        featureFlag: 2,
      });
    }
  });

  const mutate = (f: (b: Uint8Array) => Uint8Array) => f(hopper().evidence.slice());
  const setByte = (at: number, value: number) => (b: Uint8Array) => {
    b[at] = value;
    return b;
  };

  it.each([
    ['truncated to the request', (b: Uint8Array) => b.slice(0, 40), /"evidence" needs/],
    ['wrong request code', setByte(1, 0xe1), /"request\.RequestResponseCode"/],
    ['no signature requested', setByte(2, 0), /"request\.Param1"/],
    ['wrong response code', setByte(38, 0x61), /"response\.RequestResponseCode"/],
    ['record length past the end', setByte(44, 0xff), /"response\.MeasurementRecord"/],
    ['block count too small for L', setByte(41, 63), /"response\.MeasurementRecordLength"/],
    ['block count too large for L', setByte(41, 65), /"response\.MeasurementRecord\[64\]"/],
    ['a trailing byte', (b: Uint8Array) => Uint8Array.from([...b, 0]), /"response\.Signature"/],
    ['a missing byte', (b: Uint8Array) => b.slice(0, -1), /"response\.Signature"/],
  ])('rejects %s, naming the field', (_, change, message) => {
    expect.assertions(1);
    expect(() => parseGpuEvidence(mutate(change))).toThrow(message);
  });

  it('rejects an opaque TLV that overruns OpaqueDataLength', () => {
    const b = hopper().evidence.slice();
    // Opaque length sits after request 37 + header 8 + record 3520 + responder nonce 32.
    const at = 37 + 8 + 3520 + 32;
    const length = b[at]! | (b[at + 1]! << 8);
    // Grow the first TLV's size beyond the opaque area.
    b[at + 2 + 2] = 0xff;
    b[at + 2 + 3] = 0x0f;
    expect(length).toBe(422);
    expect(() => parseGpuEvidence(b)).toThrow(/"response\.OpaqueData\[0\]" TLV value runs past/);
  });

  it('never echoes evidence bytes in its messages', () => {
    const b = hopper().evidence.slice(0, 200);
    try {
      parseGpuEvidence(b);
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).not.toMatch(/[0-9a-f]{16}/);
    }
  });
});
