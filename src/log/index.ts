export type { Logger } from './logger.js';
export { createLogger, logDestination } from './logger.js';
