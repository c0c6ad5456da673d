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

  it('starts with the install-and-run command and the test command that CI runs, then the tool install', () => {
    const blocks = [...readme.matchAll(/```sh\n([^`]+)```/g)].map((m) => m[1]?.trim() ?? '');
    // A fresh machine: install and run, then test (what CI runs); then the tool install.
    expect(blocks[0]).toBe('npm ci && npm start');
    expect(blocks[1]).toBe('npm test');
    expect(blocks[2]).toMatch(/^npm ci && npm pack\b/m);
    expect(blocks[2]).toMatch(/^npm install -g \.\/teeml-sidecar-\*\.tgz\b/m);
    expect(read('.ci/run')).toMatch(/^npm test$/m);
  });

  it('"Try it" runs in a scratch directory: nothing it writes lands in the checkout', () => {
    const tryIt = readme.slice(readme.indexOf('## Try it'));
    const block = /```sh\n([^`]+)```/.exec(tryIt)?.[1] ?? '';
    expect(block.split('\n')[0]).toBe('cd "$(mktemp -d)"');
    expect(block).toContain('-o response.json');
  });

  it('states the Node.js versions package.json requires', () => {
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    expect(engines).toBe('^20.19.0 || >=22.13.0');
    expect(readme).toContain('Node.js 20.19 or later on 20.x, or 22.13 or later');
  });
});
