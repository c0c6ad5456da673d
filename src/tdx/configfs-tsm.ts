import { randomUUID } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { posix } from 'node:path';
import { assertBytes } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';
import type { QuoteProvider, QuoteResult } from './quote-provider.js';
import { expectQuoteReportData } from './report-data.js';

/**
 * TDX quotes through the kernel's configfs-tsm report interface (Linux >= 6.7,
 * Documentation/ABI/testing/configfs-tsm; PLATFORMS.md "Getting a TDX quote"):
 *
 *   mkdir <root>/<name>         the kernel populates inblob, outblob, generation, provider, ...
 *   read  generation            g0
 *   write inblob                exactly 64 bytes of report_data; generation becomes g0 + 1
 *   read  outblob               the quote for the current inblob (generated on read)
 *   read  generation            must still be g0 + 1: any other writer to this entry in between
 *                               would have bumped it, and then outblob may not be ours
 *   rmdir <root>/<name>
 *
 * `provider` reads `tdx_guest` on TDX. The kernel answers -EBUSY while another request holds the
 * TSM (one quote at a time per guest); we retry those with a bounded backoff. Pure fs, no native
 * code; the fs operations are injected so tests can play the kernel.
 */

/** The few fs operations this provider needs; defaults to node:fs/promises. */
export interface ConfigfsFs {
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
}

export const nodeConfigfsFs: ConfigfsFs = {
  mkdir: async (path) => {
    await fsp.mkdir(path);
  },
  rmdir: (path) => fsp.rmdir(path),
  readFile: async (path) => new Uint8Array(await fsp.readFile(path)),
  writeFile: (path, data) => fsp.writeFile(path, data),
};

export interface ConfigfsTsmOptions {
  /** The configfs-tsm report directory. */
  root?: string;
  fs?: ConfigfsFs;
  /** Waits between EBUSY retries; injected so tests need not sleep. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Entry name generator; must be unique among concurrent users of the same root. */
  entryName?: () => string;
  /** Attempts in total (EBUSY and generation mismatches both count). Default 5. */
  maxAttempts?: number;
  /** First EBUSY backoff; doubles per retry up to `maxBackoffMs`. Defaults 20 and 500 ms. */
  backoffMs?: number;
  maxBackoffMs?: number;
}

const defaultSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

const errnoCode = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;

/** Raised inside one attempt when it may be retried. */
class RetryableAttempt extends Error {
  constructor(readonly reason: 'busy' | 'generation') {
    super(reason);
  }
}

const TSM_PROVIDER_TDX = 'tdx_guest';
const PLATFORM = 'configfs-tsm';

const unavailable = (message: string, details: Record<string, unknown>, cause?: unknown) =>
  new SidecarError(message, {
    status: 503,
    code: 'tee_unavailable',
    details: { platform: PLATFORM, ...details },
    cause,
  });

export class ConfigfsTsmQuoteProvider implements QuoteProvider {
  readonly platform = 'configfs-tsm' as const;
  readonly simulated = false;
  private readonly root: string;
  private readonly fs: ConfigfsFs;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly entryName: () => string;
  private readonly maxAttempts: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  /** Requests run one at a time: the kernel serves one per guest anyway, and EBUSY retries are costly. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(options: ConfigfsTsmOptions = {}) {
    this.root = options.root ?? '/sys/kernel/config/tsm/report';
    this.fs = options.fs ?? nodeConfigfsFs;
    this.sleep = options.sleep ?? defaultSleep;
    this.entryName = options.entryName ?? (() => `teeml-${randomUUID()}`);
    this.maxAttempts = options.maxAttempts ?? 5;
    this.backoffMs = options.backoffMs ?? 20;
    this.maxBackoffMs = options.maxBackoffMs ?? 500;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1) {
      throw new TypeError('"maxAttempts" expected a positive integer');
    }
  }

  getQuote(reportData: Uint8Array, signal?: AbortSignal): Promise<QuoteResult> {
    assertBytes('reportData', reportData, 64);
    const input = reportData.slice();
    const run = this.tail.then(() => this.quoteWithRetries(input, signal));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async quoteWithRetries(reportData: Uint8Array, signal?: AbortSignal): Promise<QuoteResult> {
    let backoff = this.backoffMs;
    const reasons: string[] = [];
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      signal?.throwIfAborted();
      try {
        const quote = await this.attempt(reportData);
        return { quote, eventLog: [], info: {}, reportDataScheme: 'raw' };
      } catch (err) {
        if (!(err instanceof RetryableAttempt)) throw err;
        reasons.push(err.reason);
        if (attempt === this.maxAttempts) break;
        if (err.reason === 'busy') {
          await this.sleep(backoff, signal);
          backoff = Math.min(backoff * 2, this.maxBackoffMs);
        }
      }
    }
    const busy = reasons.at(-1) === 'busy';
    throw new SidecarError(
      busy
        ? `TDX quote unavailable: configfs-tsm stayed busy after ${reasons.length} attempts`
        : `TDX quote unavailable: configfs-tsm generation changed under us in ${reasons.length} attempts (concurrent writer)`,
      { status: 503, code: 'tee_busy', details: { platform: PLATFORM, attempts: reasons.length, reasons } },
    );
  }

  /** One mkdir..rmdir cycle. */
  private async attempt(reportData: Uint8Array): Promise<Uint8Array> {
    const dir = posix.join(this.root, this.entryName());
    await this.step('mkdir', () => this.fs.mkdir(dir));
    try {
      await this.checkProvider(dir);
      const before = await this.readGeneration(dir);
      await this.step('write inblob', () => this.fs.writeFile(posix.join(dir, 'inblob'), reportData));
      const afterWrite = await this.readGeneration(dir);
      if (afterWrite !== before + 1) throw new RetryableAttempt('generation');
      const quote = await this.step('read outblob', () => this.fs.readFile(posix.join(dir, 'outblob')));
      const afterRead = await this.readGeneration(dir);
      if (afterRead !== afterWrite) throw new RetryableAttempt('generation');
      if (quote.length === 0) throw unavailable('TDX quote unavailable: configfs-tsm outblob is empty', {});
      expectQuoteReportData(PLATFORM, quote, reportData);
      return quote;
    } finally {
      // Always remove the entry: configfs keeps it (and its quote) until rmdir. A failure here
      // must not hide the result or the original error.
      await this.fs.rmdir(dir).catch(() => undefined);
    }
  }

  /** Runs one fs step, turning EBUSY into a retry and anything else into a 503. */
  private async step<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EBUSY' || code === 'EAGAIN') throw new RetryableAttempt('busy');
      const hint =
        code === 'ENOENT' && what === 'mkdir'
          ? ' (no configfs-tsm report directory: kernel < 6.7, configfs not mounted, or not a TDX guest)'
          : code === 'EACCES' || code === 'EPERM'
            ? ' (configfs-tsm needs root)'
            : '';
      throw unavailable(
        `TDX quote unavailable: configfs-tsm ${what} failed${code ? ` with ${code}` : ''}${hint}`,
        { step: what, errno: code ?? null },
        err,
      );
    }
  }

  private async checkProvider(dir: string): Promise<void> {
    let text: string;
    try {
      text = new TextDecoder().decode(await this.fs.readFile(posix.join(dir, 'provider')));
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') return; // older kernels have no provider attribute
      if (code === 'EBUSY' || code === 'EAGAIN') throw new RetryableAttempt('busy');
      throw unavailable(
        'TDX quote unavailable: configfs-tsm provider unreadable',
        { errno: code ?? null },
        err,
      );
    }
    const provider = text.trim();
    if (provider !== TSM_PROVIDER_TDX) {
      // The provider is a kernel module name (tdx_guest, sev_guest, ...), not a secret; print it
      // only when it looks like one.
      const shown = /^[a-z0-9_-]{1,32}$/.test(provider) ? `"${provider}"` : 'an unexpected value';
      throw unavailable(`TDX quote unavailable: configfs-tsm provider is ${shown}, not ${TSM_PROVIDER_TDX}`, {
        step: 'provider',
      });
    }
  }

  private async readGeneration(dir: string): Promise<number> {
    const bytes = await this.step('read generation', () => this.fs.readFile(posix.join(dir, 'generation')));
    const text = new TextDecoder().decode(bytes).trim();
    if (!/^\d{1,15}$/.test(text)) {
      throw unavailable('TDX quote unavailable: configfs-tsm generation is not a number', {
        length: bytes.length,
      });
    }
    return Number(text);
  }
}
