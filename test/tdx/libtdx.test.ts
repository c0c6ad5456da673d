import koffi from 'koffi';
import { beforeEach, describe, expect, it } from 'vitest';
import { LibTdxQuoteProvider, TDX_ATTEST_ERRORS, tdxAttestError } from '../../src/tdx/libtdx.js';
import { parseQuote } from '../../src/tdx/quote.js';
import { nativeDouble } from '../paths.js';
import { rejection } from '../rejection.js';
import { hex } from './fixture-quotes.js';

/** The C double (native/doubles/libtdx_attest.c), built by test/global-setup.ts. */
const LIBRARY = nativeDouble('libtdx_attest.so.1');
const lib = koffi.load(LIBRARY);
const double = {
  reset: lib.func('void tdx_double_reset(void)'),
  setRc: lib.func('void tdx_double_set_rc(uint32_t rc)'),
  setMode: lib.func('void tdx_double_set_mode(int32_t mode)'),
  setDelayMs: lib.func('void tdx_double_set_delay_ms(uint32_t ms)'),
  allocations: lib.func('int64_t tdx_double_allocations(void)'),
  frees: lib.func('int64_t tdx_double_frees(void)'),
  calls: lib.func('int64_t tdx_double_calls(void)'),
  maxInFlight: lib.func('int32_t tdx_double_max_in_flight(void)'),
  rawGetQuote: lib.func(
    'uint32_t tdx_att_get_quote(const uint8_t *rd, const void *list, uint32_t n, uint8_t *key, _Inout_ void **pp, _Inout_ uint32_t *size, uint32_t flags)',
  ),
};
const MODE = { normal: 0, nullQuote: 1, zeroSize: 2, rcWithQuote: 3 } as const;

const rd = (fill: number) => new Uint8Array(64).fill(fill);

const expectAllFreed = () => {
  expect(Number(double.frees())).toBe(Number(double.allocations()));
};

beforeEach(() => {
  double.reset();
});

describe('LibTdxQuoteProvider through koffi and the C double', () => {
  it('returns the quote with our report_data, copied out and freed', async () => {
    const provider = new LibTdxQuoteProvider({ libraryPath: LIBRARY });
    const result = await provider.getQuote(rd(0x3c));
    const q = parseQuote(result.quote);
    expect(hex(q.report.reportData)).toBe(hex(rd(0x3c)));
    expect(q.reportDataOffset).toBe(568);
    expect(hex(q.report.mrTd)).toBe('d0'.repeat(48));
    expect(result).toMatchObject({ eventLog: [], info: {}, reportDataScheme: 'raw' });
    expect(provider).toMatchObject({ platform: 'libtdx', simulated: false });
    expect(Number(double.allocations())).toBe(1);
    expectAllFreed();
    // The copy outlives the library's buffer.
    expect(hex(parseQuote(result.quote).report.reportData)).toBe(hex(rd(0x3c)));
  });

  it.each(Object.entries(TDX_ATTEST_ERRORS).map(([rc, e]) => [Number(rc), e.name, e.code] as const))(
    'return code %i (%s) is a 503 %s with the code in details',
    async (rc, name, code) => {
      const provider = new LibTdxQuoteProvider({ libraryPath: LIBRARY });
      double.setRc(rc);
      const err = await rejection(provider.getQuote(rd(1)));
      expect(err).toMatchObject({ status: 503, code, details: { platform: 'libtdx', rc, rcName: name } });
      expect(err.message).toContain(name);
      expect(Number(double.calls())).toBe(1);
      expect(Number(double.allocations())).toBe(0);
      expectAllFreed();
    },
  );

  it('covers every documented code 0x1..0xc, busy included', () => {
    expect(Object.keys(TDX_ATTEST_ERRORS).map(Number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(TDX_ATTEST_ERRORS[9]?.code).toBe('tdx_attest_busy');
  });

  it('maps unknown codes too', async () => {
    const provider = new LibTdxQuoteProvider({ libraryPath: LIBRARY });
    double.setRc(0xd);
    const err = await rejection(provider.getQuote(rd(1)));
    expect(err).toMatchObject({ status: 503, code: 'tdx_attest_unknown_error', details: { rc: 0xd } });
    expect(err.message).toContain('0x000d');
    expect(tdxAttestError(0xffff).code).toBe('tdx_attest_unknown_error');
  });

  it('frees a quote the library allocated even when it reports failure', async () => {
    const provider = new LibTdxQuoteProvider({ libraryPath: LIBRARY });
    double.setRc(8);
    double.setMode(MODE.rcWithQuote);
    expect(await rejection(provider.getQuote(rd(1)))).toMatchObject({ code: 'tdx_attest_quote_failure' });
    expect(Number(double.allocations())).toBe(1);
    expectAllFreed();
  });

  it('treats success without a quote (NULL pointer) as a 503', async () => {
    const provider = new LibTdxQuoteProvider({ libraryPath: LIBRARY });
    double.setMode(MODE.nullQuote);
    const err = await rejection(provider.getQuote(rd(1)));
    expect(err).toMatchObject({ status: 503, code: 'tee_unavailable' });
    expect(err.message).toMatch(/success without a quote/);
    expect(Number(double.frees())).toBe(0);
  });

  it('treats a zero quote size as a 503 and still frees the buffer', async () => {
    const provider = new LibTdxQuoteProvider({ libraryPath: LIBRARY });
    double.setMode(MODE.zeroSize);
    const err = await rejection(provider.getQuote(rd(1)));
    expect(err.message).toMatch(/implausible quote size/);
    expect(Number(double.allocations())).toBe(1);
    expectAllFreed();
  });

  it('frees every quote across many calls', async () => {
    const provider = new LibTdxQuoteProvider({ libraryPath: LIBRARY });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => provider.getQuote(rd(i))));
    expect(results.map((r) => parseQuote(r.quote).report.reportData[0])).toEqual(
      Array.from({ length: 20 }, (_, i) => i),
    );
    expect(Number(double.allocations())).toBe(20);
    expectAllFreed();
  });

  it('runs calls one at a time, off the event loop', async () => {
    const provider = new LibTdxQuoteProvider({ libraryPath: LIBRARY });
    double.setDelayMs(5);
    let ticks = 0;
    let running = true;
    const spin = async () => {
      while (running) {
        await new Promise((resolve) => setImmediate(resolve));
        ticks++;
      }
    };
    const spinning = spin();
    await Promise.all([1, 2, 3].map((i) => provider.getQuote(rd(i))));
    running = false;
    await spinning;
    expect(Number(double.calls())).toBe(3);
    expect(double.maxInFlight()).toBe(1);
    // A blocking (synchronous) call would have starved setImmediate for the whole 15 ms.
    expect(ticks).toBeGreaterThan(3);
    expectAllFreed();
  });

  it('loads the library lazily: a missing library is a 503 per request, not a crash', async () => {
    const provider = new LibTdxQuoteProvider({ libraryPath: '/nonexistent/libtdx_attest.so.1' });
    const err = await rejection(provider.getQuote(rd(1)));
    expect(err).toMatchObject({ status: 503, code: 'tee_unavailable' });
    expect(err.message).toMatch(/could not load \/nonexistent\/libtdx_attest\.so\.1/);
    // And again, not a cached rejection of a different kind.
    expect(await rejection(provider.getQuote(rd(1)))).toMatchObject({ code: 'tee_unavailable' });
  });

  it('reports a library without the entry points', async () => {
    const provider = new LibTdxQuoteProvider({ libraryPath: 'libc.so.6' });
    const err = await rejection(provider.getQuote(rd(1)));
    expect(err).toMatchObject({ status: 503, code: 'tee_unavailable' });
    expect(err.message).toMatch(/lacks tdx_att_get_quote/);
  });

  it('checks the report_data length and an aborted signal before calling', async () => {
    const provider = new LibTdxQuoteProvider({ libraryPath: LIBRARY });
    expect(() => provider.getQuote(new Uint8Array(65))).toThrow(
      /"reportData" expected Uint8Array of length 64/,
    );
    await expect(provider.getQuote(rd(1), AbortSignal.abort())).rejects.toThrow(/abort/i);
    expect(Number(double.calls())).toBe(0);
  });
});

describe('the C double itself behaves like Intel libtdx_attest', () => {
  it('rejects NULL report data, NULL outputs and non-zero flags with INVALID_PARAMETER (2)', () => {
    const out: unknown[] = [null];
    const size = [0];
    const key = Buffer.alloc(16);
    expect(double.rawGetQuote(null, null, 0, key, out, size, 0)).toBe(2);
    expect(double.rawGetQuote(Buffer.alloc(64), null, 0, key, null, size, 0)).toBe(2);
    expect(double.rawGetQuote(Buffer.alloc(64), null, 0, key, out, null, 0)).toBe(2);
    expect(double.rawGetQuote(Buffer.alloc(64), null, 0, key, out, size, 1)).toBe(2);
    expect(double.rawGetQuote(Buffer.alloc(64), null, 1, key, out, size, 0)).toBe(2);
    expect(out[0]).toBeNull();
    expect(Number(double.allocations())).toBe(0);
  });
});
