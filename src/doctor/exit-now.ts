import { koffiLoader } from '../lazy/index.js';

const ffi = koffiLoader();

/**
 * Ends the process at once with `code`, for when a check's native call (NVML, libtdx_attest) is
 * still stuck after its deadline. koffi runs those calls on libuv's worker threads, and process.exit
 * runs libuv's teardown, which joins those threads: the doctor would print its report and then hang
 * as long as the device does. libc's `_exit` ends the process without that join. The caller flushes
 * its output first. Where libc cannot be bound (not glibc), it falls back to `exit`.
 */
export const exitNow = (code: number, exit: (code: number) => never = process.exit): never => {
  try {
    ffi().load('libc.so.6').func('void _exit(int status)')(code);
  } catch {
    // Not glibc: the ordinary exit, which may wait for the stuck call.
  }
  return exit(code);
};
