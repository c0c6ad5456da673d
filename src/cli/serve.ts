import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/index.js';
import { createLogger } from '../log/index.js';
import { startSidecar } from '../server/index.js';
import { explainParseError } from './parse-error.js';
import { UsageError } from './usage.js';

export const SERVE_USAGE = `Usage: teeml-sidecar serve [--port <n>] [--host <addr>]

Starts the sidecar. Its configuration comes from the environment (README, Configuration); with none,
a simulated TEE and a built-in demo model server answer, and both say so in the logs and every report.

Options:
  --port <n>        listen port (overrides PORT; default 8088; 0 = any free port)
  --host <addr>     listen address (overrides HOST; default 0.0.0.0)
  -h, --help        this text
`;

const SERVE_FLAGS = {
  port: { type: 'string' },
  host: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** A hint for a start-up failure, by its code (SidecarError code or errno). */
const START_HINTS: Record<string, string> = {
  EADDRINUSE: 'another process listens there: stop it, or pick another port with --port (or PORT)',
  EACCES: 'ports below 1024 need privileges: pick a port above 1023 with --port (or PORT)',
  EADDRNOTAVAIL: 'no interface of this machine has that address: check --host (or HOST)',
  tee_not_found:
    'on a machine without a TEE, for development: TEE_PROVIDER=simulated (the default); in a TDX CVM, ' +
    'make its interface visible (teeml-sidecar doctor says which)',
};

/** One plain line naming the cause, plus a hint where there is one (never a stack or JSON). */
export const describeStartFailure = (error: unknown, host: string, port: number): string => {
  const e = error as { message?: unknown; code?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message.split('\n')[0] : 'unknown error';
  const where = code?.startsWith('EADDR') || code === 'EACCES' ? `cannot listen on ${host}:${port}: ` : '';
  const hint = code === undefined ? undefined : START_HINTS[code];
  const codeText = code === undefined || message?.includes(code) ? '' : ` (${code})`;
  return `teeml-sidecar serve: cannot start: ${where}${message}${codeText}\n${
    hint === undefined ? '  run `teeml-sidecar doctor` for a check of this machine\n' : `  hint: ${hint}\n`
  }`;
};

/** `--port`/`--host` over PORT/HOST; `--help`; anything else is a usage error. */
const parseServeArgs = (
  argv: string[],
  env: Record<string, string | undefined>,
): { help: boolean; env: Record<string, string | undefined> } => {
  try {
    const { values } = parseArgs({ args: argv, allowPositionals: false, strict: true, options: SERVE_FLAGS });
    return {
      help: values.help === true,
      env: {
        ...env,
        ...(values.port === undefined ? {} : { PORT: values.port }),
        ...(values.host === undefined ? {} : { HOST: values.host }),
      },
    };
  } catch (error) {
    throw explainParseError(error, Object.keys(SERVE_FLAGS));
  }
};

/**
 * `teeml-sidecar serve`: reads the environment once, starts the sidecar, and shuts down on SIGTERM /
 * SIGINT. Returns the process exit code on a start-up failure: 2 usage or configuration, 1 start.
 */
export const serve = async (argv: string[], env: Record<string, string | undefined>): Promise<number> => {
  let config: ReturnType<typeof loadConfig>;
  try {
    const parsed = parseServeArgs(argv, env);
    if (parsed.help) {
      process.stdout.write(SERVE_USAGE);
      return 0;
    }
    config = loadConfig(parsed.env);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`teeml-sidecar serve: ${err.message}\n\n${SERVE_USAGE}`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(
        `teeml-sidecar: ${err.message}\n  hint: README, Configuration, lists every variable\n`,
      );
      return 2;
    }
    throw err;
  }
  const logger = createLogger(config.LOG_LEVEL);
  let sidecar: Awaited<ReturnType<typeof startSidecar>>;
  try {
    sidecar = await startSidecar(config, logger);
  } catch (err) {
    process.stderr.write(describeStartFailure(err, config.HOST, config.PORT));
    // Any start-up failure ends the process with a non-zero status, whatever is still open (a
    // supervisor must see it and restart); stderr is written synchronously to a file or pipe.
    process.exit(1);
  }
  const stop = (signal: string): void => {
    logger.info({ signal }, 'shutting down');
    sidecar.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return -1;
};
