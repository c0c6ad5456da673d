import { readFileSync } from 'node:fs';
import { parseQuote } from '../../src/tdx/index.js';
import { sharedFixtures } from '../paths.js';

/** A dstack GetQuote answer as captured (docs/platforms.md; shared/attestation-fixtures README §2). */
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

/** TD report fields of a fixture quote, read with the project's quote parser (src/tdx/quote.ts). */
export const quoteFields = (quoteHex: string) => {
  const { report } = parseQuote(Buffer.from(quoteHex, 'hex'));
  return {
    mrtd: report.mrTd,
    mrconfigid: report.mrConfigId,
    rtmrs: [report.rtmr0, report.rtmr1, report.rtmr2, report.rtmr3],
    reportData: report.reportData,
  };
};

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
