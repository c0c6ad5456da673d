export type { Config, Env, TlsMode } from './config.js';
export { ConfigError, envSchema, loadConfig } from './config.js';
