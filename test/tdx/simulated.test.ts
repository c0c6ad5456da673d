import { createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { verify as dcapVerify, Quote } from '@phala/dcap-qvl';
import { describe, expect, it } from 'vitest';
import { parseQuote } from '../../src/tdx/quote.js';
import { buildReportData } from '../../src/tdx/report-data.js';
import {
  SIMULATED_MRTD,
  SIMULATED_PCK_PEM,
  SIMULATED_QE_VENDOR_ID,
  SimulatedQuoteProvider,
} from '../../src/tdx/simulated.js';
import { parseCollateral, verifyQuote } from '../../src/tdx/verify-quote.js';
import { sharedFixtures } from '../paths.js';
import { hex } from './fixture-quotes.js';

const rawP256Key = (xy: Uint8Array) =>
  createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: Buffer.from(xy.subarray(0, 32)).toString('base64url'),
      y: Buffer.from(xy.subarray(32)).toString('base64url'),
    },
    format: 'jwk',
  });

describe('SimulatedQuoteProvider', () => {
  const provider = new SimulatedQuoteProvider();
  const reportData = buildReportData({
    algo: 'ecdsa',
    address: new Uint8Array(20).fill(0x11),
    nonce: new Uint8Array(32).fill(0x22),
  });

  it('is labelled simulated', async () => {
    const result = await provider.getQuote(reportData);
    expect(provider.platform).toBe('simulated');
    expect(provider.simulated).toBe(true);
    expect(result.eventLog).toEqual([]);
    expect(result.info).toEqual({ simulated: true, platform: 'simulated' });
    expect(result.reportDataScheme).toBe('raw');
  });

  it('produces a v4 TD1.0 quote our parser reads, report_data at offset 568', async () => {
    const { quote } = await provider.getQuote(reportData);
    const q = parseQuote(quote);
    expect(q.header).toMatchObject({ version: 4, attestationKeyType: 2, teeType: 0x81 });
    expect(q.header.qeVendorId).toEqual(SIMULATED_QE_VENDOR_ID);
    expect(new TextDecoder().decode(q.header.userData)).toContain('SIMULATED');
    expect(q.report.type).toBe('td10');
    expect(q.report.mrTd).toEqual(SIMULATED_MRTD);
    expect(new TextDecoder().decode(q.report.mrTd)).toMatch(/^SIMULATED-MRTD/);
    expect(q.report.debug).toBe(false);
    expect(hex(quote.subarray(568, 632))).toBe(hex(reportData));
    expect(q.trailingLength).toBe(0);
    expect(q.signatureData.certification.type).toBe(6);
    const inner = q.signatureData.qeReportCertification!;
    expect(inner.certification.type).toBe(5);
    expect(new TextDecoder().decode(inner.certification.data)).toBe(SIMULATED_PCK_PEM);
    expect(SIMULATED_PCK_PEM).toMatch(/SIMULATED/);
  });

  it('signs header+body with its throwaway attestation key (ECDSA P-256, r||s)', async () => {
    const { quote } = await provider.getQuote(reportData);
    const q = parseQuote(quote);
    expect(q.signatureData.attestationKey).toEqual(provider.attestationKey);
    const key = rawP256Key(q.signatureData.attestationKey);
    const signed = quote.subarray(q.signedRange.start, q.signedRange.end);
    const sig = q.signatureData.ecdsaSignature;
    expect(verify('sha256', signed, { key, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    const tampered = signed.slice();
    tampered[600] = (tampered[600] ?? 0) ^ 1;
    expect(verify('sha256', tampered, { key, dsaEncoding: 'ieee-p1363' }, sig)).toBe(false);
    const inner = q.signatureData.qeReportCertification!;
    expect(
      verify('sha256', inner.qeReport, { key, dsaEncoding: 'ieee-p1363' }, inner.qeReportSignature),
    ).toBe(true);
  });

  it('uses a fresh key per provider', () => {
    expect(hex(new SimulatedQuoteProvider().attestationKey)).not.toBe(hex(provider.attestationKey));
  });

  it('dcap-qvl parses it the same way and rejects it', async () => {
    const { quote } = await provider.getQuote(reportData);
    const theirs = Quote.parse(quote);
    expect(theirs.report.asTd10()!.reportData).toEqual(reportData);
    expect(theirs.signedLength()).toBe(632);
    const collateral = parseCollateral(
      JSON.parse(readFileSync(sharedFixtures('tdx/dcap-qvl-sample/tdx_quote_collateral.json'), 'utf8')),
    );
    expect(() => dcapVerify(quote, collateral, 1751600000)).toThrow();
    expect(() => verifyQuote(quote, collateral, 1751600000)).toThrow(/verification failed/);
  });

  it('checks report_data length and honours an aborted signal', async () => {
    await expect(provider.getQuote(new Uint8Array(63))).rejects.toThrow(
      /"reportData" expected Uint8Array of length 64/,
    );
    await expect(provider.getQuote(reportData, AbortSignal.abort())).rejects.toThrow(/abort/i);
  });
});
