/**
 * Strict parser for Intel TDX quotes, versions 4 and 5 (docs/platforms.md, "TDX quote layout"; Intel
 * TDX DCAP Quoting Library API, "Quote Format"). Integers are little-endian.
 *
 * - Header, 48 bytes: version u16 @0, attestation key type u16 @2, TEE type u32 @4, QE SVN u16 @8,
 *   PCE SVN u16 @10, QE vendor id 16 B @12, user data 20 B @28.
 * - v4: the body is a TD report 1.0 (584 B) at @48.
 * - v5: a body descriptor (type u16 @48, size u32 @50) precedes the body at @54; type 2 = TD report
 *   1.0, type 3 = TD report 1.5 (648 B: TD1.0 followed by tee_tcb_svn2 and mr_servicetd). Offsets in
 *   a v5 quote are therefore derived from the descriptor, never from the v4 layout.
 * - Then the signature data: u32 length, then that many bytes (ECDSA signature over header+body,
 *   attestation key, certification data). Real quotes may carry zero padding after it, so the
 *   length field, not the buffer length, bounds it.
 *
 * Errors are plain `QuoteParseError`s: the parser is used by the verifier and by tests as well as by
 * the providers, which turn a failure into their own 503. Messages name the field and the lengths
 * only, never quote bytes.
 */

/** Thrown for truncated or inconsistent quotes. Names the field; never carries quote bytes. */
export class QuoteParseError extends Error {
  override readonly name = 'QuoteParseError';
  readonly field: string;
  constructor(field: string, message: string) {
    super(`TDX quote: ${message}`);
    this.field = field;
  }
}

/** Half-open byte range [start, end) inside the quote. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** Fixed sizes and offsets of the quote format (docs/platforms.md). Shared with the simulated provider. */
export const QUOTE_LAYOUT = {
  headerLength: 48,
  /** v5 body descriptor: type u16 + size u32. */
  bodyDescriptorLength: 6,
  td10Length: 584,
  td15Length: 648,
  /** report_data offset inside a TD report (1.0 and 1.5). */
  reportDataInReport: 520,
  reportDataLength: 64,
  ecdsaSignatureLength: 64,
  attestationKeyLength: 64,
  qeReportLength: 384,
  qeReportSignatureLength: 64,
} as const;

export const TDX_TEE_TYPE = 0x81;
/** Attestation key type 2 = ECDSA-256 with P-256, the only one Intel's QE produces. */
export const ATTESTATION_KEY_TYPE_ECDSA_P256 = 2;
/** v5 body descriptor types. */
export const BODY_TYPE_TD10 = 2;
export const BODY_TYPE_TD15 = 3;
/** Certification data types (Intel DCAP): 5 = PCK certificate chain (PEM), 6 = QE report certification data. */
export const CERT_TYPE_PCK_CHAIN = 5;
export const CERT_TYPE_QE_REPORT = 6;

/** Offset of report_data in a v4 quote (48 + 520). */
export const V4_REPORT_DATA_OFFSET = QUOTE_LAYOUT.headerLength + QUOTE_LAYOUT.reportDataInReport;

export interface QuoteHeader {
  version: 4 | 5;
  attestationKeyType: number;
  teeType: number;
  qeSvn: number;
  pceSvn: number;
  qeVendorId: Uint8Array;
  userData: Uint8Array;
}

export interface TdReport {
  /** `td10` for TD report 1.0 (every v4 quote, v5 body type 2), `td15` for v5 body type 3. */
  type: 'td10' | 'td15';
  teeTcbSvn: Uint8Array;
  mrSeam: Uint8Array;
  mrSignerSeam: Uint8Array;
  seamAttributes: Uint8Array;
  tdAttributes: Uint8Array;
  /** TD_ATTRIBUTES bit 0 (DEBUG): the host can read and write the TD's memory and registers. */
  debug: boolean;
  xfam: Uint8Array;
  mrTd: Uint8Array;
  mrConfigId: Uint8Array;
  mrOwner: Uint8Array;
  mrOwnerConfig: Uint8Array;
  rtmr0: Uint8Array;
  rtmr1: Uint8Array;
  rtmr2: Uint8Array;
  rtmr3: Uint8Array;
  reportData: Uint8Array;
  /** TD report 1.5 only. */
  teeTcbSvn2?: Uint8Array;
  /** TD report 1.5 only. */
  mrServiceTd?: Uint8Array;
}

export interface CertificationData {
  type: number;
  /** Where the certification data body lies in the quote. */
  range: ByteRange;
  data: Uint8Array;
}

/** Certification data type 6 (Intel DCAP): the QE report that vouches for the attestation key. */
export interface QeReportCertificationData {
  qeReport: Uint8Array;
  qeReportSignature: Uint8Array;
  qeAuthData: Uint8Array;
  /** The nested certification data (type 5 = PEM PCK chain in real quotes). */
  certification: CertificationData;
}

export interface QuoteSignatureData {
  /** The bytes after the u32 length field, exactly `length` of them. */
  range: ByteRange;
  length: number;
  ecdsaSignature: Uint8Array;
  attestationKey: Uint8Array;
  certification: CertificationData;
  /** Present when `certification.type` is 6. */
  qeReportCertification?: QeReportCertificationData;
}

export interface ParsedQuote {
  header: QuoteHeader;
  /** The v5 body descriptor type (2 or 3); for v4, 2 (TD report 1.0 is implied). */
  bodyType: 2 | 3;
  /** The TD report bytes. */
  bodyRange: ByteRange;
  report: TdReport;
  /** Absolute offset of report_data in this quote (568 in v4, 574 in v5). */
  reportDataOffset: number;
  /** Header + body: the bytes the attestation key signs. */
  signedRange: ByteRange;
  signatureData: QuoteSignatureData;
  /** Bytes after the signature data (real quotes: zero padding). */
  trailingLength: number;
}

class Reader {
  private readonly view: DataView;
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(field: string, offset: number, length: number, end = this.bytes.length): void {
    if (offset + length > end) {
      const available = Math.max(0, end - offset);
      throw new QuoteParseError(
        field,
        `"${field}" needs ${length} bytes at offset ${offset}, only ${available} available (quote length ${this.bytes.length})`,
      );
    }
  }

  u16(field: string, offset: number, end?: number): number {
    this.need(field, offset, 2, end);
    return this.view.getUint16(offset, true);
  }

  u32(field: string, offset: number, end?: number): number {
    this.need(field, offset, 4, end);
    return this.view.getUint32(offset, true);
  }

  /** A copy, so callers cannot alias (or mutate) the quote buffer. */
  bytesAt(field: string, offset: number, length: number, end?: number): Uint8Array {
    this.need(field, offset, length, end);
    return this.bytes.slice(offset, offset + length);
  }
}

const parseHeader = (r: Reader): QuoteHeader => {
  const version = r.u16('version', 0);
  if (version !== 4 && version !== 5) {
    throw new QuoteParseError('version', `unsupported version ${version} (expected 4 or 5)`);
  }
  const attestationKeyType = r.u16('attestation key type', 2);
  if (attestationKeyType !== ATTESTATION_KEY_TYPE_ECDSA_P256) {
    throw new QuoteParseError(
      'attestation key type',
      `unsupported attestation key type ${attestationKeyType} (expected 2, ECDSA P-256)`,
    );
  }
  const teeType = r.u32('tee type', 4);
  if (teeType !== TDX_TEE_TYPE) {
    throw new QuoteParseError('tee type', `tee type 0x${teeType.toString(16)} is not TDX (0x81)`);
  }
  return {
    version,
    attestationKeyType,
    teeType,
    qeSvn: r.u16('qe svn', 8),
    pceSvn: r.u16('pce svn', 10),
    qeVendorId: r.bytesAt('qe vendor id', 12, 16),
    userData: r.bytesAt('user data', 28, 20),
  };
};

/** Field offsets inside a TD report (TD1.0 prefix, shared by TD1.5). */
const parseTdReport = (r: Reader, start: number, type: 'td10' | 'td15'): TdReport => {
  const at = (field: string, offset: number, length: number) => r.bytesAt(field, start + offset, length);
  const tdAttributes = at('td_attributes', 120, 8);
  const report: TdReport = {
    type,
    teeTcbSvn: at('tee_tcb_svn', 0, 16),
    mrSeam: at('mrseam', 16, 48),
    mrSignerSeam: at('mrsignerseam', 64, 48),
    seamAttributes: at('seam_attributes', 112, 8),
    tdAttributes,
    debug: ((tdAttributes[0] ?? 0) & 1) === 1,
    xfam: at('xfam', 128, 8),
    mrTd: at('mrtd', 136, 48),
    mrConfigId: at('mrconfigid', 184, 48),
    mrOwner: at('mrowner', 232, 48),
    mrOwnerConfig: at('mrownerconfig', 280, 48),
    rtmr0: at('rtmr0', 328, 48),
    rtmr1: at('rtmr1', 376, 48),
    rtmr2: at('rtmr2', 424, 48),
    rtmr3: at('rtmr3', 472, 48),
    reportData: at('report_data', QUOTE_LAYOUT.reportDataInReport, QUOTE_LAYOUT.reportDataLength),
  };
  if (type === 'td15') {
    report.teeTcbSvn2 = at('tee_tcb_svn2', 584, 16);
    report.mrServiceTd = at('mr_servicetd', 600, 48);
  }
  return report;
};

/** Certification data: type u16, size u32, body; must end within `end`. */
const parseCertification = (r: Reader, field: string, offset: number, end: number): CertificationData => {
  const type = r.u16(`${field} type`, offset, end);
  const size = r.u32(`${field} size`, offset + 2, end);
  const start = offset + 6;
  const data = r.bytesAt(`${field} body`, start, size, end);
  return { type, range: { start, end: start + size }, data };
};

const parseSignatureData = (r: Reader, lengthOffset: number): QuoteSignatureData => {
  const length = r.u32('signature data length', lengthOffset);
  const start = lengthOffset + 4;
  r.need('signature data', start, length);
  const end = start + length;
  const L = QUOTE_LAYOUT;
  const ecdsaSignature = r.bytesAt('ecdsa signature', start, L.ecdsaSignatureLength, end);
  const attestationKey = r.bytesAt(
    'attestation key',
    start + L.ecdsaSignatureLength,
    L.attestationKeyLength,
    end,
  );
  const certification = parseCertification(
    r,
    'certification data',
    start + L.ecdsaSignatureLength + L.attestationKeyLength,
    end,
  );
  const result: QuoteSignatureData = {
    range: { start, end },
    length,
    ecdsaSignature,
    attestationKey,
    certification,
  };
  if (certification.type === CERT_TYPE_QE_REPORT) {
    // Type 6 body: QE report (384), its signature (64), u16 auth data size + data, nested
    // certification data. Everything must fit inside the type-6 body.
    const inner = certification.range;
    let p = inner.start;
    const qeReport = r.bytesAt('qe report', p, L.qeReportLength, inner.end);
    p += L.qeReportLength;
    const qeReportSignature = r.bytesAt('qe report signature', p, L.qeReportSignatureLength, inner.end);
    p += L.qeReportSignatureLength;
    const authSize = r.u16('qe auth data size', p, inner.end);
    p += 2;
    const qeAuthData = r.bytesAt('qe auth data', p, authSize, inner.end);
    p += authSize;
    const nested = parseCertification(r, 'qe certification data', p, inner.end);
    result.qeReportCertification = { qeReport, qeReportSignature, qeAuthData, certification: nested };
  }
  return result;
};

/**
 * Parses a TDX quote (v4 or v5, TD report 1.0 or 1.5). Throws `QuoteParseError` on anything
 * truncated or inconsistent; never reads past the buffer.
 */
export const parseQuote = (bytes: Uint8Array): ParsedQuote => {
  if (!(bytes instanceof Uint8Array)) throw new QuoteParseError('quote', 'expected a Uint8Array');
  const r = new Reader(bytes);
  r.need('header', 0, QUOTE_LAYOUT.headerLength);
  const header = parseHeader(r);

  let bodyType: 2 | 3 = BODY_TYPE_TD10;
  let bodyStart: number = QUOTE_LAYOUT.headerLength;
  let bodyLength: number = QUOTE_LAYOUT.td10Length;
  if (header.version === 5) {
    const descriptorType = r.u16('body type', QUOTE_LAYOUT.headerLength);
    const descriptorSize = r.u32('body size', QUOTE_LAYOUT.headerLength + 2);
    if (descriptorType === BODY_TYPE_TD10) bodyLength = QUOTE_LAYOUT.td10Length;
    else if (descriptorType === BODY_TYPE_TD15) bodyLength = QUOTE_LAYOUT.td15Length;
    else {
      throw new QuoteParseError(
        'body type',
        `unsupported v5 body type ${descriptorType} (expected 2 = TD1.0 or 3 = TD1.5)`,
      );
    }
    if (descriptorSize !== bodyLength) {
      throw new QuoteParseError(
        'body size',
        `v5 body type ${descriptorType} declares size ${descriptorSize}, expected ${bodyLength}`,
      );
    }
    bodyType = descriptorType;
    bodyStart = QUOTE_LAYOUT.headerLength + QUOTE_LAYOUT.bodyDescriptorLength;
  }
  r.need('body', bodyStart, bodyLength);
  const report = parseTdReport(r, bodyStart, bodyType === BODY_TYPE_TD15 ? 'td15' : 'td10');
  const bodyEnd = bodyStart + bodyLength;
  const signatureData = parseSignatureData(r, bodyEnd);

  return {
    header,
    bodyType,
    bodyRange: { start: bodyStart, end: bodyEnd },
    report,
    reportDataOffset: bodyStart + QUOTE_LAYOUT.reportDataInReport,
    signedRange: { start: 0, end: bodyEnd },
    signatureData,
    trailingLength: bytes.length - signatureData.range.end,
  };
};
