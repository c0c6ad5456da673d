import { SidecarError } from '../errors/index.js';
import { ZG_BROKER_REPORT_DATA_SCHEME } from '../verifier/index.js';

/**
 * The report_data scheme of a 0G provider broker's `/v1/quote`: the broker asks dstack for a quote
 * over the ASCII text of its EIP-55 signing address (`TdxQuote(ctx, address.Hex(), …)` in
 * 0g-serving-broker common/tee), zero-padded to 64 bytes. The quote is made once at broker start:
 * it binds the signing key, and no verifier nonce. The verifier owns the scheme (its
 * `tdx.report-data.broker-address` check, passed only with `acceptBrokerQuote`).
 */
export const BROKER_QUOTE_SCHEME = ZG_BROKER_REPORT_DATA_SCHEME;

const HEX = /^(?:0x)?((?:[0-9a-fA-F]{2})+)$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Bytes of a field the Go broker wrote as hex (dstack's own JSON) or base64 (Go `[]byte`). */
const bytesOf = (field: string, value: unknown): Uint8Array => {
  if (typeof value !== 'string' || value === '') {
    throw new SidecarError(`0G broker quote: "${field}" expected a non-empty string`, {
      status: 502,
      code: 'invalid_broker_quote',
    });
  }
  const hex = HEX.exec(value);
  if (hex?.[1] !== undefined) return new Uint8Array(Buffer.from(hex[1], 'hex'));
  if (value.length % 4 === 0 && BASE64.test(value)) return new Uint8Array(Buffer.from(value, 'base64'));
  throw new SidecarError(`0G broker quote: "${field}" is neither hex nor base64`, {
    status: 502,
    code: 'invalid_broker_quote',
  });
};

const ADDRESS_TEXT = /^0x[0-9a-fA-F]{40}$/;

/**
 * Adapts what a 0G provider broker serves at `GET /v1/quote` (dstack's GetQuoteResponse: `quote`,
 * `event_log`, `report_data`, `vm_config`, plus `nvidia_payload`) to the flat report the verifier
 * library reads (docs/protocol.md, "Attestation report"). Nothing is vouched for here: the adapted
 * report names its scheme (`report_data_scheme`), and the verifier's checks decide.
 *
 * - `signing_address`: the ASCII address inside report_data (what the 0G SDK's verifyService
 *   reads), so a report whose quote binds another key cannot claim the chain's signer.
 * - `request_nonce`: the GPU evidence nonce, when the payload has one; the quote itself binds none.
 * - `nvidia_payload`: always a JSON string, as clients POST it to NRAS unchanged.
 */
export const adaptBrokerQuote = (value: unknown): Record<string, unknown> => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SidecarError('0G broker quote: expected a JSON object', {
      status: 502,
      code: 'invalid_broker_quote',
    });
  }
  const record = value as Record<string, unknown>;
  const quote = bytesOf('quote', record['quote']);
  const reportData = bytesOf('report_data', record['report_data']);
  const addressText = new TextDecoder().decode(reportData).replace(/\0+$/, '');
  if (!ADDRESS_TEXT.test(addressText)) {
    throw new SidecarError('0G broker quote: report_data does not hold an ASCII signing address', {
      status: 502,
      code: 'invalid_broker_quote',
    });
  }
  let eventLog: unknown = record['event_log'] ?? [];
  if (typeof eventLog === 'string') {
    try {
      eventLog = JSON.parse(eventLog) as unknown;
    } catch {
      throw new SidecarError('0G broker quote: "event_log" is not JSON', {
        status: 502,
        code: 'invalid_broker_quote',
      });
    }
  }
  const payload = record['nvidia_payload'];
  const payloadText =
    payload === undefined || payload === null
      ? undefined
      : typeof payload === 'string'
        ? payload
        : JSON.stringify(payload);
  let nonce = '';
  if (payloadText !== undefined) {
    try {
      const parsed = JSON.parse(payloadText) as { nonce?: unknown };
      if (typeof parsed.nonce === 'string') nonce = parsed.nonce;
    } catch {
      // An unparseable payload is left for the GPU checks to refuse.
    }
  }
  const info: Record<string, unknown> = {};
  if (typeof record['vm_config'] === 'string') info['vm_config'] = record['vm_config'];
  if (record['tcb_info'] !== undefined) info['tcb_info'] = record['tcb_info'];
  return {
    signing_address: addressText,
    signing_algo: 'ecdsa',
    request_nonce: nonce,
    intel_quote: Buffer.from(quote).toString('hex'),
    ...(payloadText === undefined ? {} : { nvidia_payload: payloadText }),
    event_log: eventLog,
    info,
    report_data_scheme: BROKER_QUOTE_SCHEME,
  };
};
