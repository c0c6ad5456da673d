import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AttestationService } from '../../src/attestation/index.js';
import { SidecarError } from '../../src/errors/index.js';
import type { GpuEvidenceProvider } from '../../src/gpu/index.js';
import { createSigners } from '../../src/keys/index.js';
import { createLogger } from '../../src/log/index.js';
import type { QuoteProvider } from '../../src/tdx/index.js';
import { SimulatedQuoteProvider } from '../../src/tdx/index.js';

const signers = createSigners({ secp256k1: new Uint8Array(32).fill(1), ed25519: new Uint8Array(32).fill(2) });
const noGpu: GpuEvidenceProvider = {
  kind: 'none',
  collect: async () => ({ gpus: [], ccState: null, simulated: false }),
};
const logger = createLogger('silent');

/** A quote provider whose answers the test releases by hand, counting calls. */
const gatedQuotes = () => {
  const simulated = new SimulatedQuoteProvider();
  const waiting: Array<() => void> = [];
  const signals: Array<AbortSignal | undefined> = [];
  let calls = 0;
  const provider: QuoteProvider = {
    platform: 'simulated',
    simulated: true,
    getQuote: async (rd, signal) => {
      calls++;
      signals.push(signal);
      await new Promise<void>((resolve, reject) => {
        waiting.push(resolve);
        signal?.addEventListener('abort', () => reject(signal.reason));
      });
      return simulated.getQuote(rd);
    },
  };
  return {
    provider,
    get calls() {
      return calls;
    },
    releaseAll: () => {
      for (const w of waiting.splice(0)) w();
    },
    get waiting() {
      return waiting.length;
    },
    /** The abort signal each call was given. */
    signals,
  };
};

const service = (
  quotes: QuoteProvider,
  extra: Partial<ConstructorParameters<typeof AttestationService>[0]> = {},
) =>
  new AttestationService({
    quotes,
    gpus: noGpu,
    signers,
    checkGpuEvidence: () => undefined,
    cacheTtlMs: 10_000,
    timeoutMs: 5_000,
    maxConcurrent: 1,
    maxQueue: 1,
    logger,
    ...extra,
  });

const flush = () => new Promise((r) => setImmediate(r));

describe('AttestationService', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => vi.useRealTimers());

  it('coalesces concurrent requests for the same nonce into one collection', async () => {
    const q = gatedQuotes();
    const s = service(q.provider, { maxConcurrent: 4 });
    const nonce = new Uint8Array(32).fill(7);
    const a = s.report('ecdsa', nonce);
    const b = s.report('ecdsa', nonce.slice());
    await flush();
    expect(q.calls).toBe(1);
    q.releaseAll();
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra).toBe(rb);
    expect(ra.request_nonce).toBe('07'.repeat(32));
  });

  it('queues beyond the concurrency limit and answers 429 when the queue is full', async () => {
    const q = gatedQuotes();
    const s = service(q.provider, { maxConcurrent: 1, maxQueue: 1 });
    const first = s.report('ecdsa', new Uint8Array(32).fill(1));
    const second = s.report('ecdsa', new Uint8Array(32).fill(2));
    await flush();
    const third = s.report('ecdsa', new Uint8Array(32).fill(3));
    await expect(third).rejects.toMatchObject({ status: 429, code: 'attestation_queue_full' });
    expect(q.calls).toBe(1);
    q.releaseAll();
    await first;
    await flush();
    expect(q.calls).toBe(2);
    q.releaseAll();
    expect((await second).request_nonce).toBe('02'.repeat(32));
  });

  it('answers 503 when the TEE does not answer in time, and tells the provider to stop', async () => {
    const q = gatedQuotes();
    const s = service(q.provider, { timeoutMs: 1000 });
    const pending = s.report('ecdsa', new Uint8Array(32).fill(9));
    const check = expect(pending).rejects.toMatchObject({ status: 503, code: 'attestation_timeout' });
    await flush();
    expect(q.signals).toHaveLength(1);
    expect(q.signals[0]?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1000);
    await check;
    // The provider was given a signal, and the deadline fired it.
    expect(q.signals[0]?.aborted).toBe(true);
  });

  it('serves a cached report, refreshes it in the background late in its TTL, and collects anew when expired', async () => {
    const q = gatedQuotes();
    let n = 0;
    const s = service(q.provider, { random: (len) => new Uint8Array(len).fill(++n) });
    const first = s.report('ecdsa');
    await flush();
    q.releaseAll();
    const r1 = await first;
    expect(r1.request_nonce).toBe('01'.repeat(32));
    // Early in the TTL: same report, no new collection.
    vi.advanceTimersByTime(5_000);
    expect(await s.report('ecdsa')).toBe(r1);
    expect(q.calls).toBe(1);
    // Past 80%: still the same report at once, and a refresh starts behind it.
    vi.advanceTimersByTime(3_500);
    expect(await s.report('ecdsa')).toBe(r1);
    await flush();
    expect(q.calls).toBe(2);
    q.releaseAll();
    await flush();
    await flush();
    const r2 = await s.report('ecdsa');
    expect(r2.request_nonce).toBe('02'.repeat(32));
    // Expired with no refresh: the caller waits for a fresh one.
    vi.advanceTimersByTime(20_000);
    const third = s.report('ecdsa');
    await flush();
    expect(q.calls).toBe(3);
    q.releaseAll();
    expect((await third).request_nonce).toBe('03'.repeat(32));
  });

  it('keeps ecdsa and ed25519 caches apart and fails closed on bad GPU evidence', async () => {
    const simulated = new SimulatedQuoteProvider();
    const gpu: GpuEvidenceProvider = {
      kind: 'nvml',
      collect: async () => ({
        gpus: [{ index: 0, arch: 'HOPPER', evidence: new Uint8Array(200), certificateChain: '' }],
        ccState: null,
        simulated: false,
      }),
    };
    const s = service(simulated, {
      gpus: gpu,
      checkGpuEvidence: () => {
        throw new SidecarError('GPU 0 evidence failed the local check (nonce)', {
          status: 503,
          code: 'gpu_evidence_invalid',
        });
      },
    });
    await expect(s.report('ed25519', new Uint8Array(32).fill(5))).rejects.toMatchObject({
      code: 'gpu_evidence_invalid',
    });
    const ok = service(simulated);
    const ed = await ok.report('ed25519');
    const ec = await ok.report('ecdsa');
    expect(ed.signing_algo).toBe('ed25519');
    expect(ec.signing_algo).toBe('ecdsa');
  });

  it('caches the no-nonce report per TLS binding: with, without, and per certificate', async () => {
    let n = 0;
    const s = service(new SimulatedQuoteProvider(), { random: (len) => new Uint8Array(len).fill(++n) });
    const certA = { spkiSha256: new Uint8Array(32).fill(0xa1), certificate: 'A' };
    const certB = { spkiSha256: new Uint8Array(32).fill(0xb2), certificate: 'B' };
    const plain = await s.report('ecdsa');
    const boundA = await s.report('ecdsa', undefined, certA);
    expect(plain.tls_cert_fingerprint).toBeUndefined();
    expect(plain['tls_certificate']).toBeUndefined();
    expect(boundA.tls_cert_fingerprint).toBe('a1'.repeat(32));
    expect(boundA['tls_certificate']).toBe('A');
    expect(boundA.all_attestations[0]?.tls_cert_fingerprint).toBe('a1'.repeat(32));
    expect(boundA.request_nonce).not.toBe(plain.request_nonce);
    // Each is served again from its own entry.
    expect(await s.report('ecdsa')).toBe(plain);
    expect(await s.report('ecdsa', undefined, { ...certA })).toBe(boundA);
    // A reloaded certificate gets its own report; the plain one is untouched.
    const boundB = await s.report('ecdsa', undefined, certB);
    expect(boundB.tls_cert_fingerprint).toBe('b2'.repeat(32));
    expect(await s.report('ecdsa')).toBe(plain);
    // report_data binds the certificate (tdx/report-data.ts), the nonce stays in [32, 64).
    expect(boundB.report_data.slice(64)).toBe(boundB.request_nonce);
    expect(boundB.report_data.slice(0, 64)).not.toBe(boundA.report_data.slice(0, 64));
    await expect(
      s.report('ecdsa', undefined, { spkiSha256: new Uint8Array(31), certificate: '' }),
    ).rejects.toThrow(/tls.spkiSha256/);
  });
});
