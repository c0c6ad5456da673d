export type { Config, Env } from './config.js';
export { ConfigError, envSchema, loadConfig } from './config.js';
