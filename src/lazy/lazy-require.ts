import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * A CommonJS module loaded on first use rather than at start. The sidecar's optional parts (the gRPC
 * stack for 0G Tapp, koffi for the FFI providers, the Redis client, DCAP quote verification that
 * only the verifier needs) each cost 6–20 MB of RSS once loaded; a deployment pays only for what its
 * configuration uses. `load` throws the module's own error at first use when it is missing.
 */
export const lazyRequire = <T>(specifier: string): (() => T) => {
  let loaded: T | undefined;
  return () => {
    loaded ??= require(specifier) as T;
    return loaded;
  };
};
