import { lazyRequire } from './lazy-require.js';

/**
 * koffi could not be loaded: its native module ships in a per-platform package
 * (`@koromix/koffi-<os>-<arch>`) that npm installs as an *optional* dependency, so an install made
 * with `--omit=optional` has koffi's JavaScript but not its binary. Seen on a real GPU machine,
 * where the error read like a missing NVIDIA driver; it names the actual cause instead.
 */
export class FfiUnavailableError extends Error {
  override readonly name = 'FfiUnavailableError';
}

export const FFI_UNAVAILABLE_HINT =
  "koffi's native module is missing from this install: its platform package (@koromix/koffi-" +
  `${process.platform}-${process.arch}) is an optional dependency; install without --omit=optional`;

/**
 * koffi, loaded on first use (the FFI providers only), with a load failure turned into
 * FfiUnavailableError. `load` is injectable for tests.
 */
export const koffiLoader = (
  load: () => typeof import('koffi') = lazyRequire<typeof import('koffi')>('koffi'),
): (() => typeof import('koffi')) => {
  return () => {
    try {
      return load();
    } catch (cause) {
      throw new FfiUnavailableError(FFI_UNAVAILABLE_HINT, { cause });
    }
  };
};
