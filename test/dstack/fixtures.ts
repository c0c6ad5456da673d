import { readFileSync } from 'node:fs';
import { sharedFixtures } from '../paths.js';

/** A dstack GetQuote answer as captured (PLATFORMS.md; shared/attestation-fixtures README §2). */
export interface QuoteFixture {
  name: string;
  quote: string;
  event_log: string;
  report_data?: string;
  vm_config?: string;
}

export const QUOTE_FIXTURES = [
  'dstack/verifier-fixtures/quote-report.json',
  'dstack/verifier-fixtures/tdx-lite-getquote.json',
  'dstack/nearai-sample/SAMPLE_DSTACK_QUOTE.json',
] as const;

export const readQuoteFixture = (name: string): QuoteFixture => ({
  name,
  ...(JSON.parse(readFileSync(sharedFixtures(name), 'utf8')) as Omit<QuoteFixture, 'name'>),
});

export const readInfoFixture = (): Record<string, unknown> =>
  JSON.parse(readFileSync(sharedFixtures('dstack/nearai-sample/SAMPLE_DSTACK_INFO.json'), 'utf8')) as Record<
    string,
    unknown
  >;

/**
 * TD report fields of a v4 quote (TD 1.0 body at 48; PLATFORMS.md "TDX quote layout"), read here for
 * the tests only: every dstack fixture is a v4 quote, which the test asserts.
 */
export const v4Fields = (quoteHex: string) => {
  const q = Buffer.from(quoteHex, 'hex');
  if (q.readUInt16LE(0) !== 4) throw new Error('fixture quote is not v4');
  const at = (offset: number, length: number) => new Uint8Array(q.subarray(offset, offset + length));
  return {
    mrtd: at(184, 48),
    mrconfigid: at(232, 48),
    rtmrs: [at(376, 48), at(424, 48), at(472, 48), at(520, 48)],
    reportData: at(568, 64),
  };
};

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
