import { equalBytes } from '../bytes/index.js';
import type { ParsedQuote } from '../tdx/index.js';
import type { CheckList } from './check-list.js';
import type { AttestedSigner } from './report-checks.js';

/**
 * The report_data scheme of a 0G provider broker's `/v1/quote` (the layout where the broker signs
 * in its CVM): the broker asks dstack, once at its start, for a quote over the ASCII text of its
 * EIP-55 signing address (`[]byte(address.Hex())`, 42 bytes, zero-padded to 64 by the quote; the
 * 0G SDK's verifyService reads it back the same way). It binds the signing key to the TD and
 * carries no verifier nonce: it can be replayed, so it passes only with `acceptBrokerQuote`.
 */
export const ZG_BROKER_REPORT_DATA_SCHEME = '0g-broker-ascii-address';

/** What the skipped freshness checks say: the one sentence receipts and the status page repeat. */
export const BROKER_QUOTE_NOT_FRESH = 'attested by a quote made at broker start, not for our nonce';

/**
 * `tdx.report-data.broker-address`: the quote's report_data is exactly the broker's format for the
 * attested signer: its EIP-55 text (checksum case included, as Go's `Address.Hex()` writes it)
 * followed by 22 zero bytes. Anything else (another address, lower case, a nonce after it) fails.
 */
export const checkBrokerAddress = (
  list: CheckList,
  parsed: ParsedQuote,
  signer: AttestedSigner | undefined,
): void => {
  const id = 'tdx.report-data.broker-address';
  const title = "quote report_data binds the signing address in the 0G broker's format";
  if (signer === undefined || signer.algo !== 'ecdsa') {
    list.fail(id, title, 'no valid ecdsa signing address in the report to compare with');
    return;
  }
  const expected = new Uint8Array(64);
  expected.set(new TextEncoder().encode(signer.display));
  if (equalBytes(parsed.report.reportData, expected))
    list.pass(id, title, `report_data = "${signer.display}" zero-padded (${BROKER_QUOTE_NOT_FRESH})`);
  else list.fail(id, title, `report_data is not the text of ${signer.display}, zero-padded`);
};
