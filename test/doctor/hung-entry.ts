/**
 * Run as a child process by cli.test.ts: makes the libtdx_attest double hang for a minute, then
 * runs the real CLI entry point (`teeml-sidecar doctor --json`). The quote call stays stuck on a
 * libuv worker thread; the process must still print its report and exit.
 */
import koffi from 'koffi';

const [library, main] = process.argv.slice(2) as [string, string];
// Kept referenced: a collected koffi handle unloads the library, and a reload starts it fresh.
const handle = koffi.load(library);
handle.func('void tdx_double_set_delay_ms(uint32_t ms)')(60_000);
(globalThis as { keepDouble?: unknown }).keepDouble = handle;
process.argv = [process.argv[0] as string, main, 'doctor', '--json'];
await import(main);
