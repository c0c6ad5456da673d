import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDuration, parseHeader } from '../../src/cli/gateway.js';
import { PolicyError, parsePolicy, SseEventSplitter } from '../../src/gateway/index.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

const split = (bytes: Uint8Array, cuts: number[]): string[] => {
  const s = new SseEventSplitter();
  const out: string[] = [];
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length)].sort((a, b) => a - b)) {
    out.push(...s.push(bytes.subarray(at, cut)).map(dec));
    at = cut;
  }
  out.push(...s.push(bytes.subarray(at)).map(dec), ...s.finish().map(dec));
  return out;
};

describe('SseEventSplitter', () => {
  const body =
    'data: {"id":"a"}\n\n: comment\ndata: x\r\ndata: y\r\n\r\nevent: e\rdata: z\r\rdata: [DONE]\n\n';
  const events = [
    'data: {"id":"a"}\n\n',
    ': comment\ndata: x\r\ndata: y\r\n\r\n',
    'event: e\rdata: z\r\r',
    'data: [DONE]\n\n',
  ];

  it('splits LF, CRLF and CR events, keeping their exact bytes', () => {
    expect(split(enc(body), [])).toEqual(events);
  });

  it('gives the same events fed one byte at a time and cut anywhere', () => {
    expect(split(enc(body), [...Array(body.length).keys()])).toEqual(events);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: body.length }), { maxLength: 12 }), (cuts) => {
        expect(split(enc(body), cuts)).toEqual(events);
      }),
    );
  });

  it('keeps a cut event pending (a stream that stopped mid-event)', () => {
    const s = new SseEventSplitter();
    expect(s.push(enc('data: {"id":"a"}\n\ndata: par')).map(dec)).toEqual(['data: {"id":"a"}\n\n']);
    expect(s.rest).toBe(9);
  });
});

describe('policy', () => {
  it('reads every field and normalises hex', () => {
    const p = parsePolicy(
      JSON.stringify({
        acceptTcb: ['UpToDate', 'SWHardeningNeeded'],
        mrtd: [`0x${'AB'.repeat(48)}`],
        rtmr3: ['cd'.repeat(48)],
        composeHash: 'ef'.repeat(32),
        osImageHash: ['01'.repeat(32)],
        requireGpu: false,
        expectedSigningAddress: `0x${'12'.repeat(20)}`,
        signingAlgo: 'ed25519',
      }),
    );
    expect(p).toMatchObject({
      mrtd: ['ab'.repeat(48)],
      requireGpu: false,
      allowSimulated: false,
      signingAlgo: 'ed25519',
    });
    expect(parsePolicy('{}', { allowSimulated: true }).allowSimulated).toBe(true);
  });

  it('refuses unknown keys and malformed values, naming the field only', () => {
    expect(() => parsePolicy('{"mrdt":["00"]}')).toThrow(PolicyError);
    expect(() => parsePolicy('{"mrdt":["00"]}')).toThrow(/Unrecognized key|mrdt/);
    expect(() => parsePolicy(`{"composeHash":"${'zz'.repeat(32)}"}`)).toThrow(/composeHash/);
    expect(() => parsePolicy('{"acceptTcb":["Fine"]}')).toThrow(/acceptTcb/);
    expect(() => parsePolicy('not json')).toThrow(/not JSON/);
  });
});

describe('gateway CLI values', () => {
  it('parses durations', () => {
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('45')).toBe(45_000);
    expect(() => parseDuration('10 minutes')).toThrow(/duration/);
    expect(() => parseDuration('10ms')).toThrow(/between/);
  });

  it('parses headers without echoing their values', () => {
    expect(parseHeader('X-Api-Version: 2')).toEqual(['x-api-version', '2']);
    expect(() => parseHeader('no colon secret-value')).toThrow(/Name: value/);
    expect(() => parseHeader('no colon secret-value')).not.toThrow(/secret-value/);
  });
});
