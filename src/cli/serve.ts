import { ConfigError, loadConfig } from '../config/index.js';
import { createLogger } from '../log/index.js';
import { startSidecar } from '../server/index.js';

/**
 * `teeml-sidecar serve`: reads the environment once, starts the sidecar, and shuts down on SIGTERM /
 * SIGINT. Returns the process exit code on a start-up failure.
 */
export const serve = async (env: Record<string, string | undefined>): Promise<number> => {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`teeml-sidecar: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const logger = createLogger(config.LOG_LEVEL);
  let sidecar: Awaited<ReturnType<typeof startSidecar>>;
  try {
    sidecar = await startSidecar(config, logger);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    logger.fatal({ err: { name: e.name, code: e.code, message: e.message } }, 'start-up failed');
    // Any start-up failure ends the process with a non-zero status, whatever is still open (a
    // supervisor must see it and restart). Logs are written synchronously (pino to stdout).
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
