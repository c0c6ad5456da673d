import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { QuoteParseError } from '../../src/tdx/quote.js';
import { SimulatedQuoteProvider } from '../../src/tdx/simulated.js';
import {
  type Collateral,
  loadCollateral,
  parseCollateral,
  QuoteVerificationError,
  verifyQuote,
} from '../../src/tdx/verify-quote.js';
import { sharedFixtures } from '../paths.js';
import { fixtureQuotes, hex } from './fixture-quotes.js';

const FIXTURES = fixtureQuotes();
const collateral = (path: string): Collateral =>
  parseCollateral(JSON.parse(readFileSync(sharedFixtures(path), 'utf8')));

const verificationError = (fn: () => unknown): QuoteVerificationError => {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(QuoteVerificationError);
  return caught as QuoteVerificationError;
};

/** The fixtures README checked "now" on 2026-11-22; every collateral here has expired by then. */
const realNow = () => Math.floor(Date.now() / 1000);

describe('verifyQuote with the fixture collateral', () => {
  const positive = FIXTURES.filter((f) => 'status' in f.expect);
  const negative = FIXTURES.filter((f) => 'error' in f.expect);

  it('has both positive and negative fixtures', () => {
    expect(positive.length).toBe(7);
    expect(negative.map((f) => f.version)).toEqual([5]);
  });

  it.each(positive.map((f) => [f.name, f] as const))('%s verifies UpToDate at its fixed clock', (_n, f) => {
    const result = verifyQuote(f.bytes, collateral(f.collateral), f.nowSecs);
    expect(result.status).toBe('UpToDate');
    expect(result.advisoryIds).toEqual([]);
    expect(hex(result.parsed.report.reportData)).toBe(hex(f.bytes.subarray(568, 632)));
  });

  it.each(FIXTURES.map((f) => [f.name, f] as const))('%s fails at the real current time', (_n, f) => {
    const err = verificationError(() => verifyQuote(f.bytes, collateral(f.collateral), realNow()));
    // After the collateral's nextUpdate (true from 2026-07-29 on), dcap-qvl says TCBInfo expired.
    if (realNow() > 1785286506) expect(err.reason).toBe('TCBInfo expired');
    expect(err.message).toContain('TDX quote verification failed');
  });

  it.each(positive.map((f) => [f.name, f] as const))(
    '%s fails with one flipped byte in the signed region',
    (_n, f) => {
      const c = collateral(f.collateral);
      const { reportDataOffset, report } = verifyQuote(f.bytes, c, f.nowSecs).parsed;
      for (const offset of [reportDataOffset, 48 + 136 /* mrtd */, 48 + 472 /* rtmr3 */]) {
        const q = f.bytes.slice();
        q[offset] = (q[offset] ?? 0) ^ 0x01;
        const err = verificationError(() => verifyQuote(q, c, f.nowSecs));
        expect(err.reason).toBe('ISV enclave report signature is invalid');
      }
      expect(report.debug).toBe(false);
    },
  );

  it('the v5 outdated quote fails as documented: no matching TCB level', () => {
    const f = negative[0]!;
    const err = verificationError(() => verifyQuote(f.bytes, collateral(f.collateral), f.nowSecs));
    expect(err.reason).toBe('No matching TCB level found');
  });

  it('fails before the collateral window opens', () => {
    const f = positive[0]!;
    const err = verificationError(() => verifyQuote(f.bytes, collateral(f.collateral), 1_600_000_000));
    expect(err.reason).toMatch(/issue date is in the future/);
  });

  it('rejects the simulated quote (parses with dcap-qvl, fails verification)', () => {
    const f = positive[0]!;
    const quote = new SimulatedQuoteProvider().buildQuote(new Uint8Array(64).fill(1));
    const err = verificationError(() => verifyQuote(quote, collateral(f.collateral), f.nowSecs));
    // Its "PCK chain" is a PEM text saying it is simulated: no certificate to chain to Intel.
    expect(err.reason).toMatch(/PCK certificates/);
  });

  it('throws QuoteParseError for bytes that are not a quote, and checks the clock argument', () => {
    const f = positive[0]!;
    const c = collateral(f.collateral);
    expect(() => verifyQuote(f.bytes.subarray(0, 600), c, f.nowSecs)).toThrow(QuoteParseError);
    expect(() => verifyQuote(f.bytes, c, 1.5)).toThrow(/nowSeconds/);
    expect(() => verifyQuote(f.bytes, c, -1)).toThrow(/nowSeconds/);
  });
});

describe('collateral files', () => {
  it('loadCollateral reads every fixture collateral file', async () => {
    const paths = [...new Set(FIXTURES.map((f) => f.collateral))];
    for (const path of paths) {
      const c = await loadCollateral(sharedFixtures(path));
      expect(c.tcb_info).toContain('"id":"TDX"');
    }
    expect(paths).toHaveLength(5);
  });

  it('rejects malformed JSON and missing fields, naming the fields', async () => {
    await expect(loadCollateral('x', async () => '{not json')).rejects.toThrow(/not valid JSON/);
    const good = collateral(FIXTURES[0]!.collateral);
    const { tcb_info: _drop, ...missing } = good;
    expect(() => parseCollateral(missing)).toThrow(/tcb_info/);
    expect(() => parseCollateral({ ...good, pck_crl: 'zz' })).toThrow(/pck_crl/);
    expect(() => parseCollateral(null)).toThrow(/collateral/);
  });
});
