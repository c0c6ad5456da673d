import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoFile } from '../deploy/dockerfile-parser.js';

const dir = mkdtempSync(join(tmpdir(), 'native-binding-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Makes signers in a fresh process; `breakNative` makes every native addon fail to load there. */
const makeSigners = (breakNative: boolean) => {
  const preload = join(dir, 'break-native.cjs');
  writeFileSync(
    preload,
    "require('node:module')._extensions['.node'] = () => { throw new Error('addon refused by the test'); };\n",
  );
  const script = [
    "const { createSigners } = await import('./src/keys/index.ts');",
    'const s = createSigners({ secp256k1: new Uint8Array(32).fill(1), ed25519: new Uint8Array(32).fill(2) });',
    "console.log(s.ecdsa.sign('hello'));",
  ].join('\n');
  return spawnSync(
    process.execPath,
    [...(breakNative ? ['--require', preload] : []), '--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: repoFile(''), encoding: 'utf8' },
  );
};

describe('the native libsecp256k1 binding', () => {
  it('signs with the binding when it loads', () => {
    const ok = makeSigners(false);
    expect(ok.status).toBe(0);
    expect(ok.stdout.trim()).toMatch(/^0x[0-9a-f]{130}$/);
  });

  it('is required: without it making signers fails loudly, with no fallback to a JS implementation', () => {
    const broken = makeSigners(true);
    expect(broken.status).not.toBe(0);
    expect(broken.stderr).toContain('the native libsecp256k1 binding');
    expect(broken.stderr).toContain('addon refused by the test');
    expect(broken.stdout).toBe('');
  });

  it('ships in the package as the prebuild the signer loads (linux-x64 glibc, the image platform)', () => {
    expect(existsSync(repoFile('node_modules/secp256k1/prebuilds/linux-x64/secp256k1.glibc.node'))).toBe(
      true,
    );
  });
});
