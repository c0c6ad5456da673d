/** Reading a V8 CPU profile (`node --cpu-prof`) the profiling benches wrote: top self time by function. */
import { readdirSync, readFileSync } from 'node:fs';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
}

/** The profile files in `dir` now, to tell the one a run is about to write from older ones. */
export const profilesIn = (dir: string): Set<string> =>
  new Set(readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')));

/**
 * Prints the `top` functions by share of samples (self time) of the profile written to `dir` since
 * `before`, named by function, package or dist/bench file, and line.
 */
export const printTopSelfTime = (dir: string, before: Set<string>, top: number): void => {
  const file = [...profilesIn(dir)].find((f) => !before.has(f));
  if (file === undefined) return;
  const prof = JSON.parse(readFileSync(`${dir}${file}`, 'utf8')) as CpuProfile;
  const counts = new Map<number, number>();
  for (const s of prof.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
  const byFn = new Map<string, number>();
  for (const n of prof.nodes) {
    const where = n.callFrame.url
      .replace(/^.*node_modules\//, '')
      .replace(/^file:\/\/.*\/(dist|bench)\//, '$1/');
    const key = `${n.callFrame.functionName || '(anon)'} ${where}:${n.callFrame.lineNumber}`;
    byFn.set(key, (byFn.get(key) ?? 0) + (counts.get(n.id) ?? 0));
  }
  const total = prof.samples.length;
  for (const [k, c] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((c / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
  }
};
