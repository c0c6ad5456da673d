import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type ConfigfsFs, ConfigfsTsmQuoteProvider, nodeConfigfsFs } from '../../src/tdx/configfs-tsm.js';
import { parseQuote } from '../../src/tdx/quote.js';
import { SimulatedQuoteProvider } from '../../src/tdx/simulated.js';
import { rejection } from '../rejection.js';
import { hex } from './fixture-quotes.js';

const errno = (code: string, path: string) => Object.assign(new Error(`${code}: ${path}`), { code });
const ROOT = '/sys/kernel/config/tsm/report';
const sim = new SimulatedQuoteProvider();

interface Entry {
  generation: number;
  inblob: Uint8Array;
}

type Attr = 'mkdir' | 'provider' | 'generation' | 'inblob' | 'outblob' | 'rmdir';

/**
 * An in-memory configfs-tsm, behaving as Documentation/ABI/testing/configfs-tsm describes:
 * mkdir creates an entry with generation 0; each inblob write bumps generation; reading outblob
 * produces a quote for the current inblob. Hooks inject EBUSY, concurrent writers and odd outputs.
 */
class FakeTsmKernel implements ConfigfsFs {
  readonly entries = new Map<string, Entry>();
  readonly ops: string[] = [];
  readonly inblobWrites: Uint8Array[] = [];
  provider: string | null = 'tdx_guest';
  rootExists = true;
  mkdirError: string | null = null;
  /** Fail the next N operations of this kind with EBUSY. */
  busy: Partial<Record<Attr, number>> = {};
  /** Called while outblob is read (a concurrent writer bumps generation here). */
  onOutblob: ((entry: Entry) => void) | null = null;
  /** Called after our inblob write (a writer racing us). */
  afterInblob: ((entry: Entry) => void) | null = null;
  quoteFor: (inblob: Uint8Array) => Uint8Array = (inblob) => sim.buildQuote(inblob);
  maxLive = 0;

  private entry(path: string): [Entry, string] {
    const dir = posix.dirname(path);
    const e = this.entries.get(dir);
    if (!e) throw errno('ENOENT', path);
    return [e, posix.basename(path)];
  }

  private maybeBusy(attr: Attr, path: string) {
    const n = this.busy[attr] ?? 0;
    if (n > 0) {
      this.busy[attr] = n - 1;
      throw errno('EBUSY', path);
    }
  }

  async mkdir(path: string): Promise<void> {
    this.ops.push('mkdir');
    if (this.mkdirError) throw errno(this.mkdirError, path);
    if (!this.rootExists || posix.dirname(path) !== ROOT) throw errno('ENOENT', path);
    if (this.entries.has(path)) throw errno('EEXIST', path);
    this.maybeBusy('mkdir', path);
    this.entries.set(path, { generation: 0, inblob: new Uint8Array() });
    this.maxLive = Math.max(this.maxLive, this.entries.size);
  }

  async rmdir(path: string): Promise<void> {
    this.ops.push('rmdir');
    if (!this.entries.delete(path)) throw errno('ENOENT', path);
  }

  async readFile(path: string): Promise<Uint8Array> {
    const [e, attr] = this.entry(path);
    this.ops.push(`read ${attr}`);
    if (attr === 'provider') {
      if (this.provider === null) throw errno('ENOENT', path);
      return new TextEncoder().encode(`${this.provider}\n`);
    }
    if (attr === 'generation') {
      this.maybeBusy('generation', path);
      return new TextEncoder().encode(`${e.generation}\n`);
    }
    if (attr === 'outblob') {
      this.maybeBusy('outblob', path);
      this.onOutblob?.(e);
      return this.quoteFor(e.inblob);
    }
    throw errno('ENOENT', path);
  }

  async writeFile(path: string, data: Uint8Array): Promise<void> {
    const [e, attr] = this.entry(path);
    this.ops.push(`write ${attr}`);
    if (attr !== 'inblob') throw errno('EACCES', path);
    this.maybeBusy('inblob', path);
    if (data.length > 64) throw errno('EINVAL', path);
    this.inblobWrites.push(data.slice());
    e.inblob = data.slice();
    e.generation++;
    this.afterInblob?.(e);
  }
}

const noSleep = () => {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => void waits.push(ms) };
};

const setup = (options: { maxAttempts?: number; maxBackoffMs?: number } = {}) => {
  const kernel = new FakeTsmKernel();
  const { waits, sleep } = noSleep();
  let n = 0;
  const provider = new ConfigfsTsmQuoteProvider({
    root: ROOT,
    fs: kernel,
    sleep,
    entryName: () => `entry-${++n}`,
    ...options,
  });
  return { kernel, provider, waits };
};

const rd = (fill: number) => new Uint8Array(64).fill(fill);

const HAPPY_OPS = [
  'mkdir',
  'read provider',
  'read generation',
  'write inblob',
  'read generation',
  'read outblob',
  'read generation',
  'rmdir',
];

describe('ConfigfsTsmQuoteProvider against a fake configfs-tsm', () => {
  it('gets a quote carrying our report_data, following the kernel ABI order, and removes the entry', async () => {
    const { kernel, provider } = setup();
    const result = await provider.getQuote(rd(0x5a));
    expect(hex(parseQuote(result.quote).report.reportData)).toBe(hex(rd(0x5a)));
    expect(result).toMatchObject({ eventLog: [], info: {}, reportDataScheme: 'raw' });
    expect(kernel.ops).toEqual(HAPPY_OPS);
    expect(kernel.inblobWrites).toEqual([rd(0x5a)]);
    expect(kernel.inblobWrites[0]).toHaveLength(64);
    expect(kernel.entries.size).toBe(0);
    expect(provider.platform).toBe('configfs-tsm');
    expect(provider.simulated).toBe(false);
  });

  it('retries with a fresh entry when another writer bumps generation while outblob is read', async () => {
    const { kernel, provider } = setup();
    let races = 1;
    kernel.onOutblob = (e) => {
      if (races-- > 0) e.generation++;
    };
    const result = await provider.getQuote(rd(1));
    expect(hex(parseQuote(result.quote).report.reportData)).toBe(hex(rd(1)));
    expect(kernel.ops.filter((o) => o === 'mkdir')).toHaveLength(2);
    expect(kernel.ops.filter((o) => o === 'rmdir')).toHaveLength(2);
    expect(kernel.entries.size).toBe(0);
  });

  it('retries when generation advanced by more than one across our write', async () => {
    const { kernel, provider } = setup();
    let races = 2;
    kernel.afterInblob = (e) => {
      if (races-- > 0) e.generation++;
    };
    await provider.getQuote(rd(2));
    expect(kernel.ops.filter((o) => o === 'mkdir')).toHaveLength(3);
    // A mismatch right after the write stops the attempt before outblob is generated.
    expect(kernel.ops.filter((o) => o === 'read outblob')).toHaveLength(1);
  });

  it('gives up after a bounded number of generation mismatches: 503 tee_busy', async () => {
    const { kernel, provider } = setup({ maxAttempts: 3 });
    kernel.onOutblob = (e) => {
      e.generation++;
    };
    const err = await rejection(provider.getQuote(rd(3)));
    expect(err).toMatchObject({ status: 503, code: 'tee_busy' });
    expect(err.message).toMatch(/generation changed/);
    expect(err.details).toMatchObject({ attempts: 3, reasons: ['generation', 'generation', 'generation'] });
    expect(kernel.ops.filter((o) => o === 'mkdir')).toHaveLength(3);
    expect(kernel.entries.size).toBe(0);
  });

  it('retries EBUSY with a doubling, capped backoff', async () => {
    const { kernel, provider, waits } = setup();
    kernel.busy = { mkdir: 2, outblob: 1 };
    const result = await provider.getQuote(rd(4));
    expect(hex(parseQuote(result.quote).report.reportData)).toBe(hex(rd(4)));
    expect(waits).toEqual([20, 40, 80]);
    // The EBUSY on outblob happened inside an entry, which was still removed.
    expect(kernel.entries.size).toBe(0);
    expect(kernel.ops.filter((o) => o === 'rmdir')).toHaveLength(2);
  });

  it('fails with 503 tee_busy when EBUSY persists, waiting no longer than the cap', async () => {
    const { kernel, provider, waits } = setup({ maxAttempts: 6, maxBackoffMs: 100 });
    kernel.busy = { inblob: 1000 };
    const err = await rejection(provider.getQuote(rd(5)));
    expect(err).toMatchObject({ status: 503, code: 'tee_busy' });
    expect(err.message).toMatch(/busy after 6 attempts/);
    expect(waits).toEqual([20, 40, 80, 100, 100]);
    expect(kernel.entries.size).toBe(0);
  });

  it('refuses a provider other than tdx_guest, without writing inblob', async () => {
    const { kernel, provider } = setup();
    kernel.provider = 'sev_guest';
    const err = await rejection(provider.getQuote(rd(6)));
    expect(err).toMatchObject({ status: 503, code: 'tee_unavailable' });
    expect(err.message).toContain('"sev_guest", not tdx_guest');
    expect(kernel.inblobWrites).toHaveLength(0);
    expect(kernel.entries.size).toBe(0);
  });

  it('accepts kernels without a provider attribute', async () => {
    const { kernel, provider } = setup();
    kernel.provider = null;
    const result = await provider.getQuote(rd(7));
    expect(result.quote.length).toBeGreaterThan(632);
  });

  it('reports a missing configfs-tsm root as 503 tee_unavailable without retrying', async () => {
    const { kernel, provider, waits } = setup();
    kernel.rootExists = false;
    const err = await rejection(provider.getQuote(rd(8)));
    expect(err).toMatchObject({ status: 503, code: 'tee_unavailable', details: { errno: 'ENOENT' } });
    expect(err.message).toMatch(/kernel < 6\.7/);
    expect(kernel.ops).toEqual(['mkdir']);
    expect(waits).toEqual([]);
  });

  it('says root is needed on EACCES', async () => {
    const { kernel, provider } = setup();
    kernel.mkdirError = 'EACCES';
    const err = await rejection(provider.getQuote(rd(9)));
    expect(err).toMatchObject({ status: 503, code: 'tee_unavailable' });
    expect(err.message).toMatch(/needs root/);
  });

  it('rejects an empty outblob and a quote for another report_data', async () => {
    const { kernel, provider } = setup();
    kernel.quoteFor = () => new Uint8Array();
    expect(await rejection(provider.getQuote(rd(10)))).toMatchObject({ code: 'tee_unavailable' });
    kernel.quoteFor = () => sim.buildQuote(rd(0xee));
    const err = await rejection(provider.getQuote(rd(10)));
    expect(err).toMatchObject({ status: 503, code: 'tee_bad_quote' });
    kernel.quoteFor = (inblob) => sim.buildQuote(inblob).subarray(0, 700);
    expect(await rejection(provider.getQuote(rd(10)))).toMatchObject({ code: 'tee_bad_quote' });
    expect(kernel.entries.size).toBe(0);
  });

  it('rejects a generation that is not a number', async () => {
    const { kernel, provider } = setup();
    const read = kernel.readFile.bind(kernel);
    kernel.readFile = async (path) =>
      path.endsWith('generation') ? new TextEncoder().encode('lots\n') : read(path);
    expect(await rejection(provider.getQuote(rd(11)))).toMatchObject({ code: 'tee_unavailable' });
    expect(kernel.entries.size).toBe(0);
  });

  it('serializes concurrent requests: one entry at a time, each gets its own quote', async () => {
    const { kernel, provider } = setup();
    const results = await Promise.all([1, 2, 3, 4].map((i) => provider.getQuote(rd(i))));
    expect(results.map((r) => parseQuote(r.quote).report.reportData[0])).toEqual([1, 2, 3, 4]);
    expect(kernel.maxLive).toBe(1);
    expect(kernel.ops).toEqual([...HAPPY_OPS, ...HAPPY_OPS, ...HAPPY_OPS, ...HAPPY_OPS]);
  });

  it('keeps serving after a failed request', async () => {
    const { kernel, provider } = setup();
    const mkdir = kernel.mkdir.bind(kernel);
    let first = true;
    kernel.mkdir = async (path) => {
      if (first) {
        first = false;
        throw errno('EIO', path);
      }
      return mkdir(path);
    };
    const failed = provider.getQuote(rd(1));
    const ok = provider.getQuote(rd(2));
    expect(await rejection(failed)).toMatchObject({ code: 'tee_unavailable', details: { errno: 'EIO' } });
    expect(parseQuote((await ok).quote).report.reportData[0]).toBe(2);
  });

  it('checks the report_data length before touching configfs', async () => {
    const { kernel, provider } = setup();
    expect(() => provider.getQuote(new Uint8Array(32))).toThrow(
      /"reportData" expected Uint8Array of length 64/,
    );
    expect(kernel.ops).toEqual([]);
  });

  it('rejects a nonsensical maxAttempts', () => {
    expect(() => new ConfigfsTsmQuoteProvider({ maxAttempts: 0 })).toThrow(/maxAttempts/);
  });
});

describe('ConfigfsTsmQuoteProvider timing and cancellation', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('backs off with real timers replaced by fake ones (default sleep)', async () => {
    vi.useFakeTimers();
    const kernel = new FakeTsmKernel();
    kernel.busy = { mkdir: 1 };
    const provider = new ConfigfsTsmQuoteProvider({ root: ROOT, fs: kernel });
    let done = false;
    const pending = provider.getQuote(rd(1)).then((r) => {
      done = true;
      return r;
    });
    await vi.advanceTimersByTimeAsync(19);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const result = await pending;
    expect(done).toBe(true);
    expect(hex(parseQuote(result.quote).report.reportData)).toBe(hex(rd(1)));
  });

  it('stops backing off when the signal aborts', async () => {
    vi.useFakeTimers();
    const kernel = new FakeTsmKernel();
    kernel.busy = { mkdir: 100 };
    const provider = new ConfigfsTsmQuoteProvider({ root: ROOT, fs: kernel });
    const controller = new AbortController();
    const pending = provider.getQuote(rd(1), controller.signal);
    const settled = pending.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(5);
    controller.abort(new Error('client went away'));
    expect(await settled).toEqual(new Error('client went away'));
    expect(kernel.ops).toEqual(['mkdir']);
  });

  it('does not start when the signal is already aborted', async () => {
    const { kernel, provider } = setup();
    await expect(provider.getQuote(rd(1), AbortSignal.abort())).rejects.toThrow(/abort/i);
    expect(kernel.ops).toEqual([]);
  });
});

describe('ConfigfsTsmQuoteProvider on a real directory (node:fs adapter)', () => {
  it('works through nodeConfigfsFs with a temp dir that plays the kernel', async () => {
    const root = await fsp.mkdtemp(join(tmpdir(), 'tsm-report-'));
    // Real files; the kernel's side effects are layered on the default adapter.
    const fs: ConfigfsFs = {
      mkdir: async (path) => {
        await nodeConfigfsFs.mkdir(path);
        await fsp.writeFile(join(path, 'generation'), '0\n');
        await fsp.writeFile(join(path, 'provider'), 'tdx_guest\n');
      },
      rmdir: (path) => fsp.rm(path, { recursive: true }),
      readFile: async (path) => {
        if (path.endsWith('/outblob')) {
          const inblob = await nodeConfigfsFs.readFile(join(posix.dirname(path), 'inblob'));
          await fsp.writeFile(path, sim.buildQuote(inblob));
        }
        return nodeConfigfsFs.readFile(path);
      },
      writeFile: async (path, data) => {
        await nodeConfigfsFs.writeFile(path, data);
        const gen = join(posix.dirname(path), 'generation');
        await fsp.writeFile(gen, `${Number(await fsp.readFile(gen, 'utf8')) + 1}\n`);
      },
    };
    try {
      const provider = new ConfigfsTsmQuoteProvider({ root, fs });
      const result = await provider.getQuote(rd(0x42));
      expect(hex(parseQuote(result.quote).report.reportData)).toBe(hex(rd(0x42)));
      expect(await fsp.readdir(root)).toEqual([]);
      // The default adapter maps a missing root to a clean 503.
      const missing = new ConfigfsTsmQuoteProvider({ root: join(root, 'absent') });
      expect(await rejection(missing.getQuote(rd(1)))).toMatchObject({
        code: 'tee_unavailable',
        details: { errno: 'ENOENT' },
      });
    } finally {
      await fsp.rm(root, { recursive: true, force: true });
    }
  });

  it('nodeConfigfsFs.readFile reads to EOF, not to st_size (pseudo-files report 0)', async () => {
    const stat = await fsp.stat('/proc/self/status');
    expect(stat.size).toBe(0);
    const text = new TextDecoder().decode(await nodeConfigfsFs.readFile('/proc/self/status'));
    expect(text).toMatch(/^Name:/);
    const root = await fsp.mkdtemp(join(tmpdir(), 'tsm-read-'));
    try {
      const big = Uint8Array.from({ length: 40_000 }, (_, i) => i % 251);
      await fsp.writeFile(join(root, 'blob'), big);
      expect(await nodeConfigfsFs.readFile(join(root, 'blob'))).toEqual(big);
    } finally {
      await fsp.rm(root, { recursive: true, force: true });
    }
  });
});
