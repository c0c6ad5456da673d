/** The benches' command-line options: `--name value` pairs and `KEY=VALUE,…` lists. */
import { execSync } from 'node:child_process';
import { resolve } from 'node:path';

/** The value after `name` on the command line, if it is there. */
export const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
};

/** `KEY=VALUE,…` after `name` as an environment (e.g. `--against-env BENCH_LOG_LEVEL=warn`). */
export const envArg = (name: string): Record<string, string> =>
  Object.fromEntries(
    (arg(name) ?? '')
      .split(',')
      .filter((kv) => kv.includes('='))
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );

/**
 * The A/B benches' common options (bench/cpu.ts, bench/gateway-cpu.ts, bench/wrk.ts): `--against <checkout>`,
 * `--against-env K=V,…` for its process only, `--rounds`, `--seconds`; builds this checkout's dist/
 * and the other one's.
 */
export const abOptions = (defaults: { seconds?: number } = {}) => {
  const against = arg('--against');
  execSync('npm run build --silent', { stdio: 'inherit' });
  if (against !== undefined) execSync('npm run build --silent', { stdio: 'inherit', cwd: resolve(against) });
  return {
    against,
    againstEnv: envArg('--against-env'),
    /** How the other row is named: the checkout and its environment. */
    againstLabel: [against, arg('--against-env')].filter((x) => x !== undefined).join(' '),
    rounds: Number(arg('--rounds') ?? '3'),
    seconds: Number(arg('--seconds') ?? String(defaults.seconds ?? 3)),
  };
};

/** The small chat request every bench sends (a ~300-byte answer from bench/stub.ts). */
export const SMALL_CHAT = JSON.stringify({
  model: 'bench-model',
  messages: [{ role: 'user', content: 'Say something short.' }],
});
