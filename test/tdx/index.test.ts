import { describe, expect, it } from 'vitest';
import * as dstack from '../../src/tdx/dstack.js';
import * as tdx from '../../src/tdx/index.js';
import * as tapp from '../../src/tdx/tapp.js';

describe('src/tdx/index.ts', () => {
  it('exports exactly this runtime surface (besides the dstack and tapp providers)', () => {
    const others = new Set([...Object.keys(dstack), ...Object.keys(tapp)]);
    expect(
      Object.keys(tdx)
        .filter((k) => !others.has(k))
        .sort(),
    ).toEqual([
      'ATTESTATION_KEY_TYPE_ECDSA_P256',
      'BODY_TYPE_TD10',
      'BODY_TYPE_TD15',
      'CERT_TYPE_PCK_CHAIN',
      'CERT_TYPE_QE_REPORT',
      'ConfigfsTsmQuoteProvider',
      'LibTdxQuoteProvider',
      'NONCE_LENGTH',
      'QUOTE_LAYOUT',
      'QuoteParseError',
      'QuoteVerificationError',
      'REPORT_DATA_LENGTH',
      'SIMULATED_MRTD',
      'SIMULATED_PCK_PEM',
      'SIMULATED_QE_VENDOR_ID',
      'SIMULATED_USER_DATA',
      'SimulatedQuoteProvider',
      'TDX_ATTEST_ERRORS',
      'TDX_TEE_TYPE',
      'V4_REPORT_DATA_OFFSET',
      'buildReportData',
      'ecdsaAddressFromReportData',
      'expectQuoteReportData',
      'loadCollateral',
      'nodeConfigfsFs',
      'parseCollateral',
      'parseQuote',
      'splitReportData',
      'tdxAttestError',
      'verifyQuote',
    ]);
  });

  it('every quote provider declares its platform', () => {
    expect(new tdx.SimulatedQuoteProvider().platform).toBe('simulated');
    expect(new tdx.ConfigfsTsmQuoteProvider().platform).toBe('configfs-tsm');
    expect(new tdx.LibTdxQuoteProvider().platform).toBe('libtdx');
  });
});
