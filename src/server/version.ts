import { readFileSync } from 'node:fs';

/**
 * The project version, read from package.json (the one place it is written). src/server and
 * dist/server sit at the same depth, so the relative path holds for both.
 */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
