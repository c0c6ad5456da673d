import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Compiles the C test doubles in native/ (libtdx_attest.so.1, libnvidia-ml.so.1) once per test run,
 * so the koffi FFI paths run for real without TDX or a GPU.
 */
export default function setup(): void {
  const native = fileURLToPath(new URL('../native', import.meta.url));
  execFileSync('make', ['-s', '-C', native], { stdio: 'inherit' });
}
