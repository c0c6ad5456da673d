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
    logger.fatal({ err: { name: (err as Error).name, message: (err as Error).message } }, 'start-up failed');
    return 1;
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
