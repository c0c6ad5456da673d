import { equalBytes } from '../bytes/index.js';
import {
  type ParsedQuote,
  SIMULATED_MRTD,
  SIMULATED_PCK_PEM,
  SIMULATED_QE_VENDOR_ID,
  SIMULATED_USER_DATA,
} from '../tdx/index.js';

const SIMULATED_PEM_MARKER = new TextEncoder().encode(SIMULATED_PCK_PEM.split('\n')[0] ?? 'SIMULATED');

const contains = (haystack: Uint8Array, needle: Uint8Array): boolean =>
  Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(Buffer.from(needle)) !== -1;

/**
 * The markers the simulated quote provider (src/tdx/simulated.ts) stamps into every quote it
 * builds. A report is judged simulated from these bytes as well as from its JSON labels: a
 * provider that drops `"simulated": true` from the JSON still serves a quote that says so.
 * Returns the names of the markers found (empty for a real quote).
 */
export const simulatedQuoteMarkers = (parsed: ParsedQuote): string[] => {
  const found: string[] = [];
  if (equalBytes(parsed.header.qeVendorId, SIMULATED_QE_VENDOR_ID)) found.push('QE vendor id');
  if (equalBytes(parsed.header.userData, SIMULATED_USER_DATA)) found.push('header user data');
  if (equalBytes(parsed.report.mrTd, SIMULATED_MRTD)) found.push('MRTD');
  const pck =
    parsed.signatureData.qeReportCertification?.certification.data ?? parsed.signatureData.certification.data;
  if (contains(pck, SIMULATED_PEM_MARKER)) found.push('PCK chain');
  return found;
};
