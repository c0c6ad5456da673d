import { randomBytes } from 'node:crypto';
import { Wallet } from 'ethers';
import { describe, expect, it } from 'vitest';
import { SimulatedQuoteProvider } from '../../src/tdx/index.js';
import { type CheckResult, verifyReport } from '../../src/verifier/index.js';
import { adaptBrokerQuote } from '../../src/zg/index.js';
import { brokerQuote } from './world.js';

/**
 * The verifier on a 0G broker's static quote (report_data = the signer's EIP-55 text, zero-padded;
 * GPU evidence for a nonce the broker chose): refused as a replay by default, accepted only with
 * acceptBrokerQuote, and then only when the quote binds exactly the attested address.
 */

const status = (checks: CheckResult[], id: string) => checks.find((c) => c.id === id)?.status;
const check = (checks: CheckResult[], id: string) => checks.find((c) => c.id === id);
const base = { nowSeconds: Math.floor(Date.now() / 1000), allowSimulated: true, offline: true };

describe('verifyReport on a 0G broker quote', () => {
  const address = Wallet.createRandom().address;

  it('without acceptBrokerQuote: a replay, report.nonce fails and says how to accept it', async () => {
    const report = adaptBrokerQuote(await brokerQuote(address));
    const result = await verifyReport(report, { ...base, nonce: randomBytes(32) });
    expect(result.ok).toBe(false);
    expect(result.checks.find((c) => c.status === 'fail')?.id).toBe('report.nonce');
    expect(check(result.checks, 'report.nonce')?.detail).toContain('acceptBrokerQuote');
    expect(status(result.checks, 'tdx.report-data')).toBe('fail');
    expect(status(result.checks, 'gpu.payload-nonce')).toBe('fail');
    expect(check(result.checks, 'tdx.report-data.broker-address')).toBeUndefined();
  });

  it('with acceptBrokerQuote: passes, the freshness checks skipped and saying why', async () => {
    const report = adaptBrokerQuote(await brokerQuote(address));
    const result = await verifyReport(report, {
      ...base,
      nonce: randomBytes(32),
      acceptBrokerQuote: true,
      expectAddress: address,
    });
    expect(result.checks.filter((c) => c.status === 'fail')).toEqual([]);
    expect(result.signingAddress).toBe(address);
    expect(status(result.checks, 'tdx.report-data.broker-address')).toBe('pass');
    expect(status(result.checks, 'signing.expected-address')).toBe('pass');
    for (const id of ['report.nonce', 'tdx.report-data', 'gpu.payload-nonce']) {
      expect(status(result.checks, id)).toBe('skip');
      expect(check(result.checks, id)?.detail).toMatch(/NOT FRESH|not for our nonce/);
    }
    // The GPU evidence is still checked, against the nonce its payload carries.
    expect(status(result.checks, 'gpu.evidence-nonce')).toBe('pass');
    expect(status(result.checks, 'gpu.local')).toBe('pass');
    expect(status(result.checks, 'tdx.quote')).toBe('pass');
  });

  it('a quote binding another address, a lower-case address or extra bytes fails tdx.report-data.broker-address', async () => {
    const other = Wallet.createRandom().address;
    for (const binds of [other, address.toLowerCase(), `${address}00`, address.slice(2)]) {
      const report = adaptBrokerQuote(await brokerQuote(address, binds));
      expect(report['signing_address']).toBe(address);
      const result = await verifyReport(report, {
        ...base,
        nonce: randomBytes(32),
        acceptBrokerQuote: true,
        expectAddress: address,
      });
      expect(result.checks.find((c) => c.status === 'fail')?.id).toBe('tdx.report-data.broker-address');
    }
  });

  it('a quote that binds an address the chain does not name fails signing.expected-address', async () => {
    const report = adaptBrokerQuote(await brokerQuote(address));
    const result = await verifyReport(report, {
      ...base,
      nonce: randomBytes(32),
      acceptBrokerQuote: true,
      expectAddress: Wallet.createRandom().address,
    });
    expect(status(result.checks, 'tdx.report-data.broker-address')).toBe('pass');
    expect(result.checks.find((c) => c.status === 'fail')?.id).toBe('signing.expected-address');
  });

  it('accepted only against an expected address: without one, signing.expected-address fails', async () => {
    const report = adaptBrokerQuote(await brokerQuote(address));
    const result = await verifyReport(report, { ...base, nonce: randomBytes(32), acceptBrokerQuote: true });
    expect(status(result.checks, 'tdx.report-data.broker-address')).toBe('pass');
    expect(result.checks.filter((c) => c.status === 'fail').map((c) => c.id)).toEqual([
      'signing.expected-address',
    ]);
  });

  it('GPU evidence for another nonce than its payload names fails gpu.evidence-nonce', async () => {
    const quote = await brokerQuote(address);
    const payload = quote['nvidia_payload'] as { nonce: string };
    const report = adaptBrokerQuote({ ...quote, nvidia_payload: { ...payload, nonce: 'cd'.repeat(32) } });
    const result = await verifyReport(report, { ...base, nonce: randomBytes(32), acceptBrokerQuote: true });
    expect(status(result.checks, 'gpu.evidence-nonce')).toBe('fail');
  });

  it('a sidecar report relabelled with the broker scheme does not pass as one', async () => {
    const report = adaptBrokerQuote(await brokerQuote(address));
    // A sidecar's quote binds address ‖ 12 zero bytes ‖ nonce, not the address text.
    const nonce = randomBytes(32);
    const raw = new Uint8Array(64);
    raw.set(Buffer.from(address.slice(2), 'hex'));
    raw.set(nonce, 32);
    const quote = await new SimulatedQuoteProvider().getQuote(raw);
    const relabelled = { ...report, intel_quote: Buffer.from(quote.quote).toString('hex') };
    const result = await verifyReport(relabelled, { ...base, nonce, acceptBrokerQuote: true });
    expect(status(result.checks, 'tdx.report-data.broker-address')).toBe('fail');
  });
});
