export { FFI_UNAVAILABLE_HINT, FfiUnavailableError, koffiLoader } from './koffi.js';
export { lazyRequire } from './lazy-require.js';
