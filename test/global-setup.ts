import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SECRET_MARKERS } from './secrets.js';

/**
 * 1. Compiles the C test doubles in native/ (libtdx_attest.so.1, libnvidia-ml.so.1) once per run, so
 *    the koffi FFI paths run for real without TDX or a GPU.
 * 2. Collects every log line the sidecars write during the whole suite, and at the end fails the
 *    run if any contains a key, a token, a prompt or a completion (SECURITY.md: secrets).
 */
export default function setup(): () => void {
  const native = fileURLToPath(new URL('../native', import.meta.url));
  execFileSync('make', ['-s', '-C', native], { stdio: 'inherit' });
  const logDir = mkdtempSync(join(tmpdir(), 'teeml-test-logs-'));
  process.env.TEEML_TEST_LOG_DIR = logDir;
  return () => {
    const files = readdirSync(logDir);
    let lines = 0;
    const leaks: string[] = [];
    for (const file of files) {
      const text = readFileSync(join(logDir, file), 'utf8');
      lines += text.split('\n').length - 1;
      for (const [name, secret] of Object.entries(SECRET_MARKERS)) {
        if (text.includes(secret)) leaks.push(`${name} in ${file}`);
      }
    }
    rmSync(logDir, { recursive: true, force: true });
    if (leaks.length > 0) {
      // Vitest reports a teardown error but still exits 0: set the exit code so the run fails.
      process.exitCode = 1;
      throw new Error(`secrets found in sidecar logs: ${leaks.join(', ')}`);
    }
    // A full run starts sidecars; when it did, say how much was checked.
    if (lines > 0)
      process.stdout.write(`secrets check: ${lines} log lines from ${files.length} workers, no leaks\n`);
  };
}
