import { describe, expect, it } from 'vitest';
import { SidecarError } from '../../src/errors/index.js';
import { NvmlGpuEvidenceProvider } from '../../src/gpu/index.js';
import { FFI_UNAVAILABLE_HINT, FfiUnavailableError, koffiLoader } from '../../src/lazy/index.js';

/**
 * Seen on a real H200 machine: an install made with `--omit=optional` has koffi's JavaScript but not
 * its native module, and the error read like a missing NVIDIA driver. It now names the cause.
 */
const missingBinary = () => {
  throw new Error('Cannot find the native Koffi module; did you bundle it correctly?');
};

describe('koffi, loaded on first use', () => {
  it('turns a missing native module into FfiUnavailableError naming the optional platform package', () => {
    const ffi = koffiLoader(missingBinary as never);
    expect(() => ffi()).toThrow(FfiUnavailableError);
    try {
      ffi();
    } catch (err) {
      expect((err as Error).message).toBe(FFI_UNAVAILABLE_HINT);
      expect((err as Error).message).toContain(`@koromix/koffi-${process.platform}-${process.arch}`);
      expect(((err as Error).cause as Error).message).toMatch(/native Koffi module/);
    }
  });

  it('the real koffi loads in this install', () => {
    expect(typeof koffiLoader()().load).toBe('function');
  });

  it('the NVML provider answers 503 ffi_unavailable for it, not "driver missing"', async () => {
    const provider = new NvmlGpuEvidenceProvider({
      libraryPath: 'libnvidia-ml.so.1',
      load: () => koffiLoader(missingBinary as never)() as never,
    });
    const error = await provider.collect(new Uint8Array(32)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SidecarError);
    expect(error).toMatchObject({ status: 503, code: 'ffi_unavailable' });
    expect((error as Error).message).not.toMatch(/driver/);
  });
});
