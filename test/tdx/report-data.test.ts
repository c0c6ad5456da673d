import { describe, expect, it } from 'vitest';
import { SidecarError } from '../../src/errors/index.js';
import {
  buildReportData,
  ecdsaAddressFromReportData,
  expectQuoteReportData,
  splitReportData,
} from '../../src/tdx/report-data.js';
import { SimulatedQuoteProvider } from '../../src/tdx/simulated.js';
import { fixtureQuotes, hex } from './fixture-quotes.js';

const bytes = (length: number, fill: number) => new Uint8Array(length).fill(fill);

describe('buildReportData (docs/protocol.md report_data)', () => {
  it('ecdsa: 20-byte address, 12 zero bytes, then the 32-byte nonce', () => {
    const address = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
    const nonce = bytes(32, 0xab);
    const rd = buildReportData({ algo: 'ecdsa', address, nonce });
    expect(rd).toHaveLength(64);
    expect(hex(rd)).toBe(hex(address) + '00'.repeat(12) + 'ab'.repeat(32));
  });

  it('ed25519: 32-byte public key then the nonce', () => {
    const rd = buildReportData({ algo: 'ed25519', publicKey: bytes(32, 7), nonce: bytes(32, 9) });
    expect(hex(rd)).toBe('07'.repeat(32) + '09'.repeat(32));
  });

  it('matches the NEAR e2e capture: ed25519 binding first half, client nonce second half', () => {
    const model = fixtureQuotes().find((f) => f.name.endsWith('model_intel_quote.bin'))!;
    const { nonce } = splitReportData(
      buildReportData({ algo: 'ed25519', publicKey: bytes(32, 0), nonce: model.bytes.slice(600, 632) }),
    );
    expect(hex(nonce)).toBe('e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609');
  });

  it.each([
    [
      'address 19 bytes',
      { algo: 'ecdsa', address: bytes(19, 1), nonce: bytes(32, 0) },
      /"address".*length 20, got length=19/,
    ],
    ['address 32 bytes', { algo: 'ecdsa', address: bytes(32, 1), nonce: bytes(32, 0) }, /"address"/],
    ['public key 33 bytes', { algo: 'ed25519', publicKey: bytes(33, 1), nonce: bytes(32, 0) }, /"publicKey"/],
    [
      'nonce 31 bytes',
      { algo: 'ecdsa', address: bytes(20, 1), nonce: bytes(31, 0) },
      /"nonce".*got length=31/,
    ],
    ['nonce 64 bytes', { algo: 'ed25519', publicKey: bytes(32, 1), nonce: bytes(64, 0) }, /"nonce"/],
  ] as const)('rejects %s', (_n, input, message) => {
    expect(() => buildReportData(input as never)).toThrow(message);
  });

  it('rejects an unknown algo and non-byte input', () => {
    expect(() => buildReportData({ algo: 'rsa', nonce: bytes(32, 0) } as never)).toThrow(/algo/);
    expect(() =>
      buildReportData({ algo: 'ecdsa', address: 'ab'.repeat(20) as never, nonce: bytes(32, 0) }),
    ).toThrow(/expected Uint8Array/);
  });
});

describe('splitReportData', () => {
  it('round-trips and copies', () => {
    const rd = buildReportData({ algo: 'ecdsa', address: bytes(20, 5), nonce: bytes(32, 6) });
    const { signer, nonce } = splitReportData(rd);
    expect(hex(signer)).toBe('05'.repeat(20) + '00'.repeat(12));
    expect(hex(nonce)).toBe('06'.repeat(32));
    rd.fill(0);
    expect(nonce[0]).toBe(6);
    expect(
      hex(ecdsaAddressFromReportData(buildReportData({ algo: 'ecdsa', address: bytes(20, 5), nonce })!)!),
    ).toBe('05'.repeat(20));
  });

  it('is strict about length, and ecdsa extraction needs the zero padding', () => {
    expect(() => splitReportData(bytes(63, 0))).toThrow(/"reportData" expected Uint8Array of length 64/);
    expect(ecdsaAddressFromReportData(bytes(64, 1))).toBeNull();
  });
});

describe('expectQuoteReportData', () => {
  const sim = new SimulatedQuoteProvider();

  it('returns the parsed quote when report_data matches', () => {
    const rd = bytes(64, 3);
    expect(hex(expectQuoteReportData('simulated', sim.buildQuote(rd), rd).report.reportData)).toBe(hex(rd));
  });

  it('is a 503 tee_bad_quote for another report_data or a malformed quote', () => {
    const quote = sim.buildQuote(bytes(64, 3));
    const other = () => expectQuoteReportData('configfs-tsm', quote, bytes(64, 4));
    expect(other).toThrow(SidecarError);
    expect(other).toThrow(expect.objectContaining({ status: 503, code: 'tee_bad_quote' }));
    expect(() => expectQuoteReportData('libtdx', quote.subarray(0, 100), bytes(64, 3))).toThrow(
      expect.objectContaining({
        status: 503,
        code: 'tee_bad_quote',
        details: expect.objectContaining({ field: 'body' }),
      }),
    );
  });
});
