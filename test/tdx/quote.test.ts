import { createHash } from 'node:crypto';
import { Quote } from '@phala/dcap-qvl';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ParsedQuote, parseQuote, QuoteParseError } from '../../src/tdx/quote.js';
import { fixtureQuotes, hex, matchesHex } from './fixture-quotes.js';

const FIXTURES = fixtureQuotes();
const v4 = FIXTURES.find((f) => f.name === 'tdx/dcap-qvl-sample/tdx_quote')!.bytes;
const v5 = FIXTURES.find((f) => f.version === 5)!.bytes;

const expectParseError = (bytes: Uint8Array, field: string): QuoteParseError => {
  let caught: unknown;
  try {
    parseQuote(bytes);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(QuoteParseError);
  const err = caught as QuoteParseError;
  expect(err.field).toBe(field);
  return err;
};

const setU16 = (bytes: Uint8Array, offset: number, value: number) =>
  new DataView(bytes.buffer, bytes.byteOffset).setUint16(offset, value, true);
const setU32 = (bytes: Uint8Array, offset: number, value: number) =>
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(offset, value, true);

/** Builds a v5 TD1.0 quote from a v4 one: version 5, descriptor (2, 584), same body and signature data. */
const v4ToV5Td10 = (quote: Uint8Array): Uint8Array => {
  const out = new Uint8Array(quote.length + 6);
  out.set(quote.subarray(0, 48), 0);
  setU16(out, 0, 5);
  setU16(out, 48, 2);
  setU32(out, 50, 584);
  out.set(quote.subarray(48), 54);
  return out;
};

describe('parseQuote on the real fixtures', () => {
  it.each(FIXTURES.map((f) => [f.name, f] as const))('%s: README facts', (_name, f) => {
    expect(f.bytes.length).toBe(f.size);
    expect(matchesHex(createHash('sha256').update(f.bytes).digest('hex'), f.sha256)).toBe(true);
    const q = parseQuote(f.bytes);
    expect(q.header.version).toBe(f.version);
    expect(q.bodyType).toBe(f.bodyType);
    expect(q.header.attestationKeyType).toBe(2);
    expect(q.header.teeType).toBe(0x81);
    // Intel's QE vendor id.
    expect(hex(q.header.qeVendorId)).toBe('939a7233f79c4ca9940a0db3957f0607');
    expect(matchesHex(hex(q.report.mrTd), f.mrtd)).toBe(true);
    expect(hex(q.report.reportData)).toBe(
      typeof f.reportData === 'string' ? f.reportData : expect.stringMatching(/./),
    );
    expect(q.report.debug).toBe(false);
    expect(hex(q.report.tdAttributes)).toBe('0000001000000000');
    // report_data sits where the layout says, and nowhere hard-coded for v5.
    expect(q.reportDataOffset).toBe(f.version === 4 ? 568 : 574);
    expect(hex(f.bytes.subarray(q.reportDataOffset, q.reportDataOffset + 64))).toBe(hex(q.report.reportData));
    const signedEnd = f.version === 4 ? 632 : 702;
    expect(q.signedRange).toEqual({ start: 0, end: signedEnd });
    expect(q.signatureData.range.start).toBe(signedEnd + 4);
    if (f.sigDataLength !== undefined) expect(q.signatureData.length).toBe(f.sigDataLength);
    // v4 quotes end in 70 zero bytes of padding; the v5 sample has none.
    expect(q.trailingLength).toBe(f.version === 4 ? 70 : 0);
    expect(f.bytes.subarray(q.signatureData.range.end).every((b) => b === 0)).toBe(true);
    // Certification data type 6 wrapping a PEM PCK chain (type 5).
    expect(q.signatureData.certification.type).toBe(6);
    const inner = q.signatureData.qeReportCertification!;
    expect(inner.certification.type).toBe(5);
    expect(new TextDecoder().decode(inner.certification.data)).toContain('-----BEGIN CERTIFICATE-----');
    if (f.version === 5) {
      expect(q.report.type).toBe('td15');
      expect(q.report.mrServiceTd).toEqual(new Uint8Array(48));
      expect(q.report.teeTcbSvn2).toHaveLength(16);
      expect([q.report.rtmr0, q.report.rtmr1, q.report.rtmr2, q.report.rtmr3]).toEqual(
        Array.from({ length: 4 }, () => new Uint8Array(48)),
      );
    } else {
      expect(q.report.type).toBe('td10');
      expect(q.report.teeTcbSvn2).toBeUndefined();
      expect(q.report.mrServiceTd).toBeUndefined();
    }
  });

  it('the abbreviated report_data values match by prefix and suffix too', () => {
    for (const f of FIXTURES) {
      expect(matchesHex(hex(parseQuote(f.bytes).report.reportData), f.reportData)).toBe(true);
    }
  });

  it.each(FIXTURES.map((f) => [f.name, f] as const))('%s: agrees with dcap-qvl on every field', (_n, f) => {
    const ours: ParsedQuote = parseQuote(f.bytes);
    const theirs = Quote.parse(f.bytes);
    const h = theirs.header;
    expect(ours.header).toEqual({
      version: h.version,
      attestationKeyType: h.attestationKeyType,
      teeType: h.teeType,
      qeSvn: h.qeSvn,
      pceSvn: h.pceSvn,
      qeVendorId: new Uint8Array(h.qeVendorId),
      userData: new Uint8Array(h.userData),
    });
    expect(ours.report.type).toBe(theirs.report.type);
    const td = theirs.report.asTd10()!;
    const r = ours.report;
    const pairs: [Uint8Array, Uint8Array][] = [
      [r.teeTcbSvn, td.teeTcbSvn],
      [r.mrSeam, td.mrSeam],
      [r.mrSignerSeam, td.mrSignerSeam],
      [r.seamAttributes, td.seamAttributes],
      [r.tdAttributes, td.tdAttributes],
      [r.xfam, td.xfam],
      [r.mrTd, td.mrTd],
      [r.mrConfigId, td.mrConfigId],
      [r.mrOwner, td.mrOwner],
      [r.mrOwnerConfig, td.mrOwnerConfig],
      [r.rtmr0, td.rtMr0],
      [r.rtmr1, td.rtMr1],
      [r.rtmr2, td.rtMr2],
      [r.rtmr3, td.rtMr3],
      [r.reportData, td.reportData],
    ];
    const td15 = theirs.report.asTd15();
    if (td15) {
      pairs.push([r.teeTcbSvn2!, td15.teeTcbSvn2], [r.mrServiceTd!, td15.mrServiceTd]);
    }
    for (const [a, b] of pairs) expect(hex(a)).toBe(hex(b));
    expect(ours.signedRange.end).toBe(theirs.signedLength());

    const auth = theirs.authData.intoV3();
    const sig = ours.signatureData;
    expect(hex(sig.ecdsaSignature)).toBe(hex(auth.ecdsaSignature));
    expect(hex(sig.attestationKey)).toBe(hex(auth.ecdsaAttestationKey));
    const inner = sig.qeReportCertification!;
    expect(hex(inner.qeReport)).toBe(hex(auth.qeReport));
    expect(hex(inner.qeReportSignature)).toBe(hex(auth.qeReportSignature));
    expect(hex(inner.qeAuthData)).toBe(hex(auth.qeAuthData));
    expect(inner.certification.type).toBe(auth.certificationData.certType);
    expect(hex(inner.certification.data)).toBe(hex(auth.certificationData.body));
    expect(hex(inner.certification.data)).toBe(hex(theirs.rawCertChain()));
  });
});

describe('parseQuote is strict', () => {
  it.each(FIXTURES.map((f) => [f.name, f] as const))(
    '%s: every truncation before the end of the signature data throws QuoteParseError',
    (_n, f) => {
      const end = parseQuote(f.bytes).signatureData.range.end;
      let thrown = 0;
      for (let len = 0; len < end; len++) {
        try {
          parseQuote(f.bytes.subarray(0, len));
        } catch (err) {
          if (err instanceof QuoteParseError) thrown++;
          else throw err;
        }
      }
      expect(thrown).toBe(end);
      // Cutting into the trailing padding only is fine: the length field bounds the data.
      for (let len = end; len <= f.bytes.length; len++) {
        expect(parseQuote(f.bytes.subarray(0, len)).trailingLength).toBe(len - end);
      }
    },
  );

  it('rejects versions other than 4 and 5', () => {
    for (const version of [0, 3, 6, 0xffff]) {
      const q = v4.slice();
      setU16(q, 0, version);
      expect(expectParseError(q, 'version').message).toContain(`${version}`);
    }
  });

  it('rejects a tee type other than TDX (0x81), e.g. an SGX quote', () => {
    const q = v4.slice();
    setU32(q, 4, 0);
    expect(expectParseError(q, 'tee type').message).toContain('0x0');
  });

  it('rejects attestation key types other than ECDSA P-256', () => {
    const q = v4.slice();
    setU16(q, 2, 3);
    expectParseError(q, 'attestation key type');
  });

  it('rejects a v5 body descriptor with an unknown type (1 = SGX enclave report)', () => {
    const q = v5.slice();
    setU16(q, 48, 1);
    expectParseError(q, 'body type');
  });

  it('rejects a v5 body descriptor whose size disagrees with its type', () => {
    const q = v5.slice();
    setU32(q, 50, 584);
    const err = expectParseError(q, 'body size');
    expect(err.message).toContain('584');
    expect(err.message).toContain('648');
    const td10 = v4ToV5Td10(v4);
    setU32(td10, 50, 648);
    expectParseError(td10, 'body size');
  });

  it('rejects a signature data length past the end of the quote', () => {
    const q = v4.slice();
    setU32(q, 632, q.length); // more than what follows
    const err = expectParseError(q, 'signature data');
    expect(err.message).toMatch(/needs 5006 bytes at offset 636, only 4370 available/);
  });

  it('rejects certification data that overruns the signature data', () => {
    const q = v4.slice();
    const sigLen = parseQuote(v4).signatureData.length;
    setU32(q, 636 + 128 + 2, sigLen); // type-6 size larger than the signature data
    expectParseError(q, 'certification data body');
    const q2 = v4.slice();
    // QE auth data size (after QE report 384 + signature 64) pointing past the type-6 body.
    setU16(q2, 636 + 134 + 448, 0xffff);
    expectParseError(q2, 'qe auth data');
  });

  it('parses a v5 quote with a TD1.0 body through the descriptor (report_data at 574)', () => {
    const q = parseQuote(v4ToV5Td10(v4));
    const ref = parseQuote(v4);
    expect(q.header.version).toBe(5);
    expect(q.bodyType).toBe(2);
    expect(q.report.type).toBe('td10');
    expect(q.reportDataOffset).toBe(574);
    expect(q.signedRange.end).toBe(638);
    expect(q.report).toEqual(ref.report);
    expect(Quote.parse(v4ToV5Td10(v4)).report.asTd10()!.reportData).toEqual(ref.report.reportData);
  });

  it('reads DEBUG from TD_ATTRIBUTES bit 0', () => {
    const q = v4.slice();
    q[48 + 120] = (q[48 + 120] ?? 0) | 1;
    expect(parseQuote(q).report.debug).toBe(true);
    const q5 = v5.slice();
    q5[54 + 120] = (q5[54 + 120] ?? 0) | 1;
    expect(parseQuote(q5).report.debug).toBe(true);
  });

  it('returns copies, not views of the input', () => {
    const q = v4.slice();
    const parsed = parseQuote(q);
    q.fill(0xee, 568, 632);
    expect(hex(parsed.report.reportData)).toBe(hex(v4.subarray(568, 632)));
  });

  it('never puts quote bytes in messages', () => {
    const q = v4.slice();
    setU32(q, 632, 0xffffffff);
    const err = expectParseError(q, 'signature data');
    expect(err.message).not.toMatch(/[0-9a-f]{16}/i);
    expect(err.name).toBe('QuoteParseError');
  });

  it('rejects non-Uint8Array input', () => {
    expect(() => parseQuote('00' as unknown as Uint8Array)).toThrow(QuoteParseError);
  });

  it('only ever returns or throws QuoteParseError on mutated quotes', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(v4, v5),
        fc.array(fc.tuple(fc.nat(5005), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.nat(5006),
        (base, edits, cut) => {
          const q = base.slice(0, cut);
          for (const [at, value] of edits) if (at < q.length) q[at] = value;
          let parsed: ParsedQuote;
          try {
            parsed = parseQuote(q);
          } catch (err) {
            expect(err).toBeInstanceOf(QuoteParseError);
            return;
          }
          // What parses stays inside the bytes, and report_data is the bytes at the offset it names.
          expect(parsed.signatureData.range.end).toBeLessThanOrEqual(q.length);
          expect(parsed.report.reportData).toEqual(
            q.slice(parsed.reportDataOffset, parsed.reportDataOffset + 64),
          );
        },
      ),
      { numRuns: 2000, seed: 42 },
    );
  });
});
