import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { exportJWK, generateKeyPair, type JSONWebKeySet } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  EventLogError,
  eventDigest,
  getKeyResponseSchema,
  getQuoteResponseSchema,
  infoResponseSchema,
  parseEventLog,
  replayRtmrs,
} from '../../src/dstack/index.js';
import { SidecarError } from '../../src/errors/index.js';
import {
  buildNvidiaPayload,
  parseGpuEvidence,
  parseNvidiaPayload,
  submitToNras,
  verifyNrasResult,
} from '../../src/gpu/index.js';
import {
  checkRuntimeData,
  EvidenceFormatError,
  parseTappEvidence,
  RuntimeDataError,
  reportDataOfRuntimeData,
} from '../../src/tapp/index.js';
import { parseQuote, QuoteParseError } from '../../src/tdx/index.js';
import { readQuoteFixture } from '../dstack/fixtures.js';
import { hopper } from '../gpu/fixtures.js';
import { fixtureQuotes } from '../tdx/fixture-quotes.js';

/**
 * The parsers that read attestation material from outside the process: quotes, GPU evidence and
 * payloads (from devices, services and, in the verifier, from any report), Dstack and Tapp answers,
 * NRAS answers. Property: on any input they return or throw their own error type, quickly.
 */
const RUNS = { numRuns: 300, seed: 0xa77e57 } as const;
const ASYNC_RUNS = { numRuns: 200, seed: 0xa77e57 } as const;

/** Mutations of a valid blob: truncation, byte overwrites, insertions, deletions, appended junk. */
const mutated = (valid: Uint8Array) =>
  fc.oneof(
    fc.nat(valid.length).map((n) => valid.slice(0, n)),
    fc
      .array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      })
      .map((edits) => {
        const out = valid.slice();
        for (const [at, byte] of edits) out[at] = byte;
        return out;
      }),
    fc.tuple(fc.nat(valid.length), fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([at, junk]) => {
      const out = new Uint8Array(valid.length + junk.length);
      out.set(valid.subarray(0, at));
      out.set(junk, at);
      out.set(valid.subarray(at), at + junk.length);
      return out;
    }),
    fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 64 })).map(([at, n]) => {
      const out = new Uint8Array(valid.length);
      out.set(valid.subarray(0, at));
      out.set(valid.subarray(at + n), at);
      return out.subarray(0, Math.max(0, valid.length - n));
    }),
    fc.uint8Array({ maxLength: 6000 }),
  );

const hexString = (maxLength: number) =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'.split('')), maxLength });

/**
 * Runs `fn`: it must either throw an instance of `errorType`, or return a value for which `holds`
 * asserts what a successful parse promises (a parser that returned nonsense fails too).
 */
const returnsOr = <T>(
  errorType: new (...args: never[]) => Error,
  fn: () => T,
  holds: (value: T) => void,
): void => {
  let value: T;
  try {
    value = fn();
  } catch (error) {
    expect(error).toBeInstanceOf(errorType);
    return;
  }
  holds(value);
};

/** A parsed quote stays inside its bytes and its report_data is the bytes at the offset it names. */
const quoteHolds = (bytes: Uint8Array) => (q: ReturnType<typeof parseQuote>) => {
  expect(q.signatureData.range.end).toBeLessThanOrEqual(bytes.length);
  expect(q.signedRange.end).toBeLessThanOrEqual(q.signatureData.range.start);
  expect(q.report.reportData).toEqual(bytes.slice(q.reportDataOffset, q.reportDataOffset + 64));
};

describe('TDX quote parser', () => {
  const quotes = fixtureQuotes().map((q) => q.bytes);

  it('parses mutated and truncated real quotes or throws QuoteParseError, within a time bound', () => {
    const started = Date.now();
    fc.assert(
      fc.property(fc.constantFrom(...quotes).chain(mutated), (bytes) => {
        returnsOr(QuoteParseError, () => parseQuote(bytes), quoteHolds(bytes));
      }),
      RUNS,
    );
    // 300 parses of ≤ 6 KB: anything near a second means a pathological loop.
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('rejects what is not bytes with QuoteParseError', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        // Only bytes can parse; anything else must be refused.
        returnsOr(
          QuoteParseError,
          () => parseQuote(value as Uint8Array),
          () => expect(value).toBeInstanceOf(Uint8Array),
        );
      }),
      { ...RUNS, numRuns: 100 },
    );
  });
});

describe('GPU evidence and nvidia_payload', () => {
  const gpu = hopper();
  const payload = buildNvidiaPayload(gpu.nonce, [
    { index: 0, arch: 'HOPPER', evidence: gpu.evidence, certificateChain: gpu.certificateChain } as never,
  ]);

  it('parses mutated SPDM evidence or throws a "GPU evidence:" Error (never a RangeError or TypeError)', () => {
    fc.assert(
      fc.property(mutated(gpu.evidence), (bytes) => {
        try {
          const parsed = parseGpuEvidence(bytes);
          // A parse covers every byte: signed part + 96-byte signature, nonce at [4, 36).
          expect(parsed.signedBytes.length + parsed.signature.length).toBe(bytes.length);
          expect(parsed.signature.length).toBe(96);
          expect(parsed.nonce).toEqual(bytes.slice(4, 36));
        } catch (error) {
          expect(error).toBeInstanceOf(Error);
          expect(error).not.toBeInstanceOf(RangeError);
          expect(error).not.toBeInstanceOf(TypeError);
          expect((error as Error).message).toMatch(/^GPU evidence: /);
        }
      }),
      RUNS,
    );
  });

  it('parses the payload it builds, and throws a "nvidia_payload:" Error for anything else', () => {
    expect(parseNvidiaPayload(payload).evidenceList).toHaveLength(1);
    const json = JSON.parse(payload) as Record<string, unknown>;
    const text = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.json({ maxDepth: 4 }),
      mutated(new TextEncoder().encode(payload)).map((b) => Buffer.from(b).toString('latin1')),
      fc
        .tuple(
          fc.constantFrom(...Object.keys(json), 'claims_version', 'extra'),
          fc.jsonValue({ maxDepth: 2 }),
        )
        .map(([key, value]) => JSON.stringify({ ...json, [key]: value })),
      // A valid top-level arch that the entries do not share.
      fc.constant(JSON.stringify({ ...json, arch: 'BLACKWELL' })),
    );
    fc.assert(
      fc.property(text, (input) => {
        try {
          const parsed = parseNvidiaPayload(input);
          // What parses is one 32-byte nonce and at least one entry, all of the top-level arch.
          expect(parsed.nonce.length).toBe(32);
          expect(parsed.evidenceList.length).toBeGreaterThan(0);
          for (const entry of parsed.evidenceList) expect(entry.arch).toBe(parsed.arch);
        } catch (error) {
          expect(error).toBeInstanceOf(Error);
          expect((error as Error).message).toMatch(/^nvidia_payload: /);
        }
      }),
      RUNS,
    );
  });
});

describe('Dstack answers', () => {
  const fixture = readQuoteFixture('dstack/verifier-fixtures/quote-report.json');

  it('parses mutated event logs or throws EventLogError; replay throws nothing else', () => {
    const events = JSON.parse(fixture.event_log) as unknown[];
    const input = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.anything(),
      mutated(new TextEncoder().encode(fixture.event_log)).map((b) => Buffer.from(b).toString('latin1')),
      fc
        .tuple(
          fc.nat(events.length - 1),
          fc.constantFrom('imr', 'event_type', 'digest', 'event', 'event_payload'),
          fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.integer(), hexString(100)),
        )
        .map(([i, key, value]) => {
          const copy = structuredClone(events) as Array<Record<string, unknown>>;
          (copy[i] as Record<string, unknown>)[key] = value;
          return JSON.stringify(copy);
        }),
    );
    fc.assert(
      fc.property(input, (value) => {
        returnsOr(
          EventLogError,
          () => {
            const parsed = parseEventLog(value);
            for (const [i, event] of parsed.entries()) eventDigest(event, i);
            return replayRtmrs(parsed);
          },
          // A replay is four SHA-384 registers.
          (rtmrs) => expect(rtmrs.map((r) => r.length)).toEqual([48, 48, 48, 48]),
        );
      }),
      RUNS,
    );
  });

  it('validates GetQuote, Info and GetKey answers with safeParse, which never throws', () => {
    const shaped = fc.oneof(
      fc.anything(),
      fc.record(
        {
          quote: fc.oneof(hexString(160), fc.string(), fc.anything()),
          // A string event log too, or no GetQuote answer is ever accepted.
          event_log: fc.oneof(fc.string(), fc.anything()),
        },
        { requiredKeys: [] },
      ),
      fc.record(
        { key: fc.oneof(hexString(160), fc.anything()), signature_chain: fc.anything() },
        { requiredKeys: [] },
      ),
      fc.record({ app_id: fc.anything(), tcb_info: fc.anything() }, { requiredKeys: [] }),
    );
    fc.assert(
      fc.property(shaped, (value) => {
        // safeParse must not throw, and what it accepts must have the shape the client relies on.
        const evenHex = /^(?:[0-9a-fA-F]{2})*$/;
        const quote = getQuoteResponseSchema.safeParse(value);
        if (quote.success) expect(quote.data.quote).toMatch(/^(?:[0-9a-fA-F]{2})+$/);
        const info = infoResponseSchema.safeParse(value);
        if (info.success) expect(typeof info.data.app_id).toBe('string');
        const key = getKeyResponseSchema.safeParse(value);
        if (key.success)
          for (const h of [key.data.key, ...key.data.signature_chain]) expect(h).toMatch(evenHex);
      }),
      RUNS,
    );
    expect(getQuoteResponseSchema.safeParse(fixture).success).toBe(true);
  });
});

describe('Tapp evidence and runtime_data', () => {
  const evidence = new TextEncoder().encode(
    JSON.stringify({
      quote: Buffer.from(fixtureQuotes()[0]?.bytes ?? new Uint8Array(8)).toString('base64'),
      cc_eventlog: null,
      runtime_data: Buffer.from('{"signer":"0x00"}').toString('base64'),
    }),
  );

  it('parses mutated evidence blobs or throws EvidenceFormatError', () => {
    expect(parseTappEvidence(evidence).quote.length).toBeGreaterThan(0);
    const input = fc.oneof(
      mutated(evidence),
      fc.jsonValue({ maxDepth: 3 }).map((v) => new TextEncoder().encode(JSON.stringify(v))),
      fc
        .record({
          quote: fc.oneof(fc.base64String(), fc.string()),
          runtime_data: fc.oneof(fc.base64String(), fc.string()),
        })
        .map((v) => new TextEncoder().encode(JSON.stringify(v))),
    );
    fc.assert(
      fc.property(input, (bytes) => {
        returnsOr(
          EvidenceFormatError,
          () => parseTappEvidence(bytes),
          // The schema asks for at least 4 base64 characters: a parsed quote is never empty.
          (parsed) => expect(parsed.quote.length).toBeGreaterThan(0),
        );
      }),
      RUNS,
    );
  });

  it('checks runtime_data (committed to by the quote or not) and throws only RuntimeDataError', () => {
    const nonce = new Uint8Array(32).fill(7);
    const runtime = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.jsonValue({ maxDepth: 2 }).map((v) => new TextEncoder().encode(JSON.stringify(v))),
      fc
        .record(
          {
            nonce: fc.oneof(
              hexString(160),
              fc.constant(`0x${'07'.repeat(32)}`),
              fc.constant(`0x${'08'.repeat(32)}`),
            ),
            // A well-formed signer too, or the accepting path is never reached.
            signer: fc.oneof(fc.string(), fc.constant(`0x${'ab'.repeat(20)}`)),
          },
          { requiredKeys: [] },
        )
        .map((v) => new TextEncoder().encode(JSON.stringify(v))),
    );
    fc.assert(
      fc.property(runtime, fc.boolean(), (runtimeData, committed) => {
        const quoteReportData = committed ? reportDataOfRuntimeData(runtimeData) : new Uint8Array(64);
        returnsOr(
          RuntimeDataError,
          () => checkRuntimeData({ runtimeData, quoteReportData, nonce }),
          // Accepted only when the quote committed to these bytes and they echo our nonce.
          (data) => {
            expect(committed).toBe(true);
            expect(data.nonce?.toLowerCase()).toBe(`0x${'07'.repeat(32)}`);
          },
        );
      }),
      RUNS,
    );
  });
});

describe('NRAS answers', () => {
  let jwks: JSONWebKeySet;
  beforeAll(async () => {
    const { publicKey } = await generateKeyPair('ES384');
    jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'fuzz', alg: 'ES384' }] };
  });

  const segment = fc.base64String({ maxLength: 60 }).map((s) => s.replace(/[+/=]/g, '') || 'e30');
  const compactJwt = fc.tuple(segment, segment, segment).map((p) => p.join('.'));
  const answer = fc.oneof(
    fc.anything(),
    fc.tuple(
      fc.tuple(fc.constant('JWT'), compactJwt),
      fc.dictionary(fc.constantFrom('GPU-0', 'GPU-1', 'x'), compactJwt),
    ),
    fc.tuple(fc.tuple(fc.string(), fc.anything()), fc.anything()),
  );

  it('verifying a garbage answer resolves with ok=false and names failures; it never rejects', async () => {
    await fc.assert(
      fc.asyncProperty(answer, fc.integer({ min: 0, max: 8 }), async (value, gpuCount) => {
        const result = await verifyNrasResult(value, {
          jwks,
          nonceHex: '00'.repeat(32),
          gpuCount,
          now: new Date(1_800_000_000_000),
        });
        expect(result.ok).toBe(false);
        expect(result.failures.length + (gpuCount === 0 ? 1 : 0)).toBeGreaterThan(0);
      }),
      ASYNC_RUNS,
    );
  });

  it('submitting to an NRAS that answers garbage rejects with a SidecarError (503), never anything else', async () => {
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.json({ maxDepth: 3 }).map((j) => new TextEncoder().encode(j)),
      answer.map((a) => new TextEncoder().encode(JSON.stringify(a) ?? 'null')),
    );
    await fc.assert(
      fc.asyncProperty(body, fc.constantFrom(200, 200, 200, 400, 500, 302), async (bytes, status) => {
        const fetch = async () => new Response(status === 302 ? null : bytes, { status });
        try {
          const result = await submitToNras('{}', {
            fetch: fetch as typeof globalThis.fetch,
            timeoutMs: 1_000,
          });
          // Only a well-shaped detached EAT gets through; its tokens are checked by verifyNrasResult.
          expect(result[0][0]).toBe('JWT');
        } catch (error) {
          expect(error).toBeInstanceOf(SidecarError);
          expect((error as SidecarError).status).toBe(503);
        }
      }),
      ASYNC_RUNS,
    );
  });
});

// Keep a fingerprint of the fixture used above: the properties are only as good as their seed input.
describe('fixtures under mutation', () => {
  it('are the real captured quote and GPU evidence', () => {
    const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
    expect(sha(fixtureQuotes()[0]?.bytes ?? new Uint8Array())).toBe(
      'c42f9164325024bca2757bc8819b11879a0a369132ea4e2b7c85df4805ea72db',
    );
    expect(parseGpuEvidence(hopper().evidence).signature.length).toBe(96);
  });
});
