import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { envSchema } from '../../src/config/index.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const readme = read('README.md');

describe('README', () => {
  it('documents every configuration variable, and only those', () => {
    const documented = new Set([...readme.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1]));
    const accepted = Object.keys(envSchema.shape);
    expect([...documented].sort()).toEqual([...accepted].sort());
  });

  it('starts with the install-and-run command and the test command that CI runs', () => {
    const blocks = [...readme.matchAll(/```sh\n([^`]+)```/g)].map((m) => m[1]?.trim());
    expect(blocks[0]).toBe('npm ci && npm start');
    expect(blocks[1]).toBe('npm test');
    expect(read('.ci/run')).toMatch(/^npm test$/m);
  });
});
