// The public surface of src/tdx (docs/architecture.md, code habit 1): re-exports only. test/exports.test.ts pins the list.
export type { ConfigfsFs, ConfigfsTsmOptions } from './configfs-tsm.js';
export { ConfigfsTsmQuoteProvider, DEFAULT_TSM_REPORT_ROOT, nodeConfigfsFs } from './configfs-tsm.js';
// dstack.ts and tapp.ts exports follow here.
export type { DstackQuoteProviderOptions } from './dstack.js';
export { DstackQuoteProvider } from './dstack.js';
export type { LibTdxOptions } from './libtdx.js';
export {
  DEFAULT_LIBTDX_ATTEST_PATH,
  LibTdxQuoteProvider,
  TDX_ATTEST_ERRORS,
  tdxAttestError,
} from './libtdx.js';
export type {
  ByteRange,
  CertificationData,
  ParsedQuote,
  QeReportCertificationData,
  QuoteHeader,
  QuoteSignatureData,
  TdReport,
} from './quote.js';
export {
  ATTESTATION_KEY_TYPE_ECDSA_P256,
  BODY_TYPE_TD10,
  BODY_TYPE_TD15,
  CERT_TYPE_PCK_CHAIN,
  CERT_TYPE_QE_REPORT,
  parseQuote,
  QUOTE_LAYOUT,
  QuoteParseError,
  TDX_TEE_TYPE,
  V4_REPORT_DATA_OFFSET,
} from './quote.js';
export type {
  QuoteProvider,
  QuoteResult,
  ReportDataScheme,
  TeePlatform,
} from './quote-provider.js';
export type { QuoteSignatures } from './quote-signatures.js';
export { INTEL_SGX_ROOT_CA_SHA256, QuoteSignatureError, verifyQuoteSignatures } from './quote-signatures.js';
export type { ReportDataInput, SplitReportData } from './report-data.js';
export {
  buildReportData,
  ecdsaAddressFromReportData,
  expectQuoteReportData,
  NONCE_LENGTH,
  REPORT_DATA_LENGTH,
  splitReportData,
} from './report-data.js';
export type { SimulatedQuoteProviderOptions } from './simulated.js';
export {
  SIMULATED_MRTD,
  SIMULATED_PCK_PEM,
  SIMULATED_QE_VENDOR_ID,
  SIMULATED_USER_DATA,
  SimulatedQuoteProvider,
} from './simulated.js';
export type { TappQuoteProviderOptions } from './tapp.js';
export { TappQuoteProvider } from './tapp.js';
export type { Collateral, QuoteVerification, TcbStatus } from './verify-quote.js';
export { loadCollateral, parseCollateral, QuoteVerificationError, verifyQuote } from './verify-quote.js';
