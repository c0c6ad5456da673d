/**
 * Reads report_data out of a TDX quote (PLATFORMS.md, "TDX quote layout"): version u16 @0; v4: TD
 * report 1.0 at 48, report_data at body+520 = 568; v5: body descriptor (type u16 @48: 2 = TD1.0,
 * 3 = TD1.5; size u32 @50), body at 54, report_data at 574 for both body types (TD1.5 only appends
 * fields after it). Version and sizes are checked rather than assumed.
 */
const HEADER_BYTES = 48;
const TD10_BODY_BYTES = 584;
const TD15_BODY_BYTES = 648;
const REPORT_DATA_IN_BODY = 520;
const TEE_TYPE_TDX = 0x81;

export class QuoteFormatError extends Error {
  override readonly name = 'QuoteFormatError';
}

export const quoteReportData = (quote: Uint8Array): Uint8Array => {
  const view = new DataView(quote.buffer, quote.byteOffset, quote.byteLength);
  if (quote.length < HEADER_BYTES + TD10_BODY_BYTES) {
    throw new QuoteFormatError(`quote too short: ${quote.length} bytes`);
  }
  const version = view.getUint16(0, true);
  if (view.getUint32(4, true) !== TEE_TYPE_TDX) throw new QuoteFormatError('quote is not a TDX quote');
  let body: number;
  let bodySize: number;
  if (version === 4) {
    body = HEADER_BYTES;
    bodySize = TD10_BODY_BYTES;
  } else if (version === 5) {
    const type = view.getUint16(48, true);
    bodySize = view.getUint32(50, true);
    const expected = type === 2 ? TD10_BODY_BYTES : type === 3 ? TD15_BODY_BYTES : -1;
    if (bodySize !== expected) throw new QuoteFormatError(`v5 quote body type ${type} with size ${bodySize}`);
    body = HEADER_BYTES + 6;
  } else {
    throw new QuoteFormatError(`unsupported quote version ${version}`);
  }
  if (quote.length < body + bodySize) throw new QuoteFormatError(`quote too short: ${quote.length} bytes`);
  // A copy, as a plain Uint8Array even when given a Buffer.
  return new Uint8Array(quote.subarray(body + REPORT_DATA_IN_BODY, body + REPORT_DATA_IN_BODY + 64));
};
