/**
 * Parser for NVIDIA GPU attestation evidence (docs/platforms.md, "NVIDIA GPU evidence").
 *
 * The evidence blob is what `nvmlDeviceGetConfComputeGpuAttestationReport` puts in
 * `attestationReport`: an SPDM 1.1 GET_MEASUREMENTS request followed by the signed MEASUREMENTS
 * response (DMTF DSP0274 1.1, sections 10.11 and 10.11.1):
 *
 *   request  (37 B)  SPDMVersion 0x11 | code 0xE0 | param1 0x01 (signature wanted) | param2 0xFF (all
 *                    blocks) | nonce 32 B @4 | SlotIDParam @36
 *   response         SPDMVersion 0x11 | code 0x60 | param1 | param2 (slot) | NumberOfBlocks u8 |
 *                    MeasurementRecordLength u24 LE | record (L bytes) | responder nonce 32 B |
 *                    OpaqueDataLength u16 LE | opaque data | signature 96 B
 *
 * Opaque data is NVIDIA's TLV list (type u16 LE, size u16 LE, value); NVAT `evidence.h` names the
 * types: 3 driver version (NUL-terminated text), 6 VBIOS version (8 bytes), 36 FEATURE_FLAG.
 * The signature is ECDSA P-384 r‖s over SHA-384 of every byte before it (request included).
 *
 * Every length is checked against the bytes actually present; the first violation throws a plain
 * Error naming the field (never the bytes: docs/architecture.md, code habit 6). Callers at a client-visible boundary wrap
 * it in a SidecarError.
 */

/** SPDM 1.1 GET_MEASUREMENTS request size: 4 header bytes, 32-byte nonce, SlotIDParam. */
export const SPDM_REQUEST_LENGTH = 37;
/** Where the requester's nonce sits in the evidence (docs/platforms.md: nonce at [4, 36)). */
export const EVIDENCE_NONCE_OFFSET = 4;
export const EVIDENCE_NONCE_LENGTH = 32;
/** ECDSA P-384 signature, r‖s (IEEE P1363), 48 bytes each. */
export const EVIDENCE_SIGNATURE_LENGTH = 96;

const SPDM_VERSION_1_1 = 0x11;
const GET_MEASUREMENTS = 0xe0;
const MEASUREMENTS = 0x60;
const RESPONSE_HEADER_LENGTH = 8;

/** Opaque-data TLV types (NVAT `evidence.h`). */
export const OPAQUE_DRIVER_VERSION = 3;
export const OPAQUE_VBIOS_VERSION = 6;
export const OPAQUE_FEATURE_FLAG = 36;

export interface MeasurementBlock {
  index: number;
  /** MeasurementSpecification; bit 0 = DMTF. */
  specification: number;
  /** DMTF measurement value type, when specification is DMTF. */
  valueType?: number;
  /** The measurement (the DMTF value when specification is DMTF, else the raw field). */
  value: Uint8Array;
}

export interface OpaqueField {
  type: number;
  value: Uint8Array;
}

export interface ParsedGpuEvidence {
  /** The requester's nonce, bytes [4, 36). */
  nonce: Uint8Array;
  slot: number;
  measurementBlocks: MeasurementBlock[];
  responderNonce: Uint8Array;
  /** Offset of the responder nonce in the evidence (after the measurement record). */
  responderNonceOffset: number;
  opaque: OpaqueField[];
  driverVersion?: string;
  vbiosVersion?: string;
  /** FEATURE_FLAG, little-endian: 0 MPT, 1 SPT, 2 PPCIE (NVAT `evidence.h`). */
  featureFlag?: number;
  /** Everything the signature covers. */
  signedBytes: Uint8Array;
  signature: Uint8Array;
}

const fail = (field: string, why: string): never => {
  throw new Error(`GPU evidence: "${field}" ${why}`);
};

const need = (bytes: Uint8Array, offset: number, length: number, field: string): void => {
  if (offset + length > bytes.length) {
    fail(field, `needs ${length} bytes at offset ${offset}, evidence has ${bytes.length}`);
  }
};

const u16 = (b: Uint8Array, o: number): number => (b[o] as number) | ((b[o + 1] as number) << 8);

const u24 = (b: Uint8Array, o: number): number => u16(b, o) | ((b[o + 2] as number) << 16);

/** Driver version TLV: ASCII text up to the first NUL. */
const decodeText = (value: Uint8Array): string => {
  const end = value.indexOf(0);
  return Buffer.from(value.subarray(0, end < 0 ? value.length : end)).toString('latin1');
};

/**
 * VBIOS TLV: 8 bytes; NVIDIA's verifier prints bytes 3, 2, 1, 0, 4 as two-digit upper-case hex
 * joined by dots (e.g. `96.00.9F.00.01`), as nvidia-smi shows it.
 */
const decodeVbios = (value: Uint8Array): string | undefined => {
  if (value.length < 5) return undefined;
  return [3, 2, 1, 0, 4]
    .map((i) => (value[i] as number).toString(16).padStart(2, '0').toUpperCase())
    .join('.');
};

const decodeLittleEndian = (value: Uint8Array): number | undefined => {
  if (value.length === 0 || value.length > 4) return undefined;
  let n = 0;
  for (let i = value.length - 1; i >= 0; i--) n = n * 256 + (value[i] as number);
  return n;
};

export const parseGpuEvidence = (evidence: Uint8Array): ParsedGpuEvidence => {
  if (!(evidence instanceof Uint8Array)) fail('evidence', 'expected bytes');
  need(evidence, 0, SPDM_REQUEST_LENGTH + RESPONSE_HEADER_LENGTH + EVIDENCE_SIGNATURE_LENGTH, 'evidence');

  // GET_MEASUREMENTS request (DSP0274 1.1 table 40).
  if (evidence[0] !== SPDM_VERSION_1_1) fail('request.SPDMVersion', 'expected 0x11');
  if (evidence[1] !== GET_MEASUREMENTS) fail('request.RequestResponseCode', 'expected 0xE0');
  if (evidence[2] !== 0x01) fail('request.Param1', 'expected 0x01 (signature requested)');
  if (evidence[3] !== 0xff) fail('request.Param2', 'expected 0xFF (all measurement blocks)');
  const nonce = evidence.slice(EVIDENCE_NONCE_OFFSET, EVIDENCE_NONCE_OFFSET + EVIDENCE_NONCE_LENGTH);
  const slot = evidence[36] as number;

  // MEASUREMENTS response (DSP0274 1.1 table 42).
  let p = SPDM_REQUEST_LENGTH;
  if (evidence[p] !== SPDM_VERSION_1_1) fail('response.SPDMVersion', 'expected 0x11');
  if (evidence[p + 1] !== MEASUREMENTS) fail('response.RequestResponseCode', 'expected 0x60');
  const numberOfBlocks = evidence[p + 4] as number;
  const recordLength = u24(evidence, p + 5);
  p += RESPONSE_HEADER_LENGTH;
  need(evidence, p, recordLength, 'response.MeasurementRecord');
  const recordEnd = p + recordLength;

  const measurementBlocks: MeasurementBlock[] = [];
  for (let i = 0; i < numberOfBlocks; i++) {
    const field = `response.MeasurementRecord[${i}]`;
    if (p + 4 > recordEnd) fail(field, 'header runs past MeasurementRecordLength');
    const index = evidence[p] as number;
    const specification = evidence[p + 1] as number;
    const size = u16(evidence, p + 2);
    p += 4;
    if (p + size > recordEnd) fail(field, 'MeasurementSize runs past MeasurementRecordLength');
    const raw = evidence.subarray(p, p + size);
    if ((specification & 0x01) === 1) {
      // DMTF measurement: type u8, size u16, value (DSP0274 1.1 table 45).
      if (size < 3) fail(field, 'DMTF measurement shorter than its 3-byte header');
      const valueSize = u16(raw, 1);
      if (valueSize + 3 !== size) fail(field, 'DMTF value size disagrees with MeasurementSize');
      measurementBlocks.push({
        index,
        specification,
        valueType: raw[0] as number,
        value: raw.slice(3),
      });
    } else {
      measurementBlocks.push({ index, specification, value: raw.slice() });
    }
    p += size;
  }
  if (p !== recordEnd) fail('response.MeasurementRecordLength', 'disagrees with the blocks it holds');

  need(evidence, p, EVIDENCE_NONCE_LENGTH + 2, 'response.Nonce');
  const responderNonceOffset = p;
  const responderNonce = evidence.slice(p, p + EVIDENCE_NONCE_LENGTH);
  p += EVIDENCE_NONCE_LENGTH;
  const opaqueLength = u16(evidence, p);
  p += 2;
  need(evidence, p, opaqueLength, 'response.OpaqueData');
  const opaqueEnd = p + opaqueLength;

  const opaque: OpaqueField[] = [];
  while (p < opaqueEnd) {
    const field = `response.OpaqueData[${opaque.length}]`;
    if (p + 4 > opaqueEnd) fail(field, 'TLV header runs past OpaqueDataLength');
    const type = u16(evidence, p);
    const size = u16(evidence, p + 2);
    p += 4;
    if (p + size > opaqueEnd) fail(field, 'TLV value runs past OpaqueDataLength');
    opaque.push({ type, value: evidence.slice(p, p + size) });
    p += size;
  }

  if (evidence.length - p !== EVIDENCE_SIGNATURE_LENGTH) {
    fail('response.Signature', `expected exactly ${EVIDENCE_SIGNATURE_LENGTH} bytes after the opaque data`);
  }

  const result: ParsedGpuEvidence = {
    nonce,
    slot,
    measurementBlocks,
    responderNonce,
    responderNonceOffset,
    opaque,
    signedBytes: evidence.subarray(0, p),
    signature: evidence.slice(p),
  };
  const driver = opaque.find((f) => f.type === OPAQUE_DRIVER_VERSION);
  if (driver) result.driverVersion = decodeText(driver.value);
  const vbios = opaque.find((f) => f.type === OPAQUE_VBIOS_VERSION);
  const vbiosVersion = vbios ? decodeVbios(vbios.value) : undefined;
  if (vbiosVersion !== undefined) result.vbiosVersion = vbiosVersion;
  const feature = opaque.find((f) => f.type === OPAQUE_FEATURE_FLAG);
  const featureFlag = feature ? decodeLittleEndian(feature.value) : undefined;
  if (featureFlag !== undefined) result.featureFlag = featureFlag;
  return result;
};
