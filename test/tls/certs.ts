import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GeneratedTlsSource, type TlsIdentity } from '../../src/tls/index.js';

/** A fresh self-signed ECDSA pair for `hostnames`, issued as of `at` (default now). */
export const makePair = async (
  hostnames: string[] = ['localhost', '127.0.0.1'],
  at: Date = new Date(),
): Promise<{ cert: string; key: string; identity: TlsIdentity }> => {
  const identity = await new GeneratedTlsSource({ hostnames, now: () => at }).load();
  return { cert: identity.certificate, key: identity.key as string, identity };
};

/** A temp dir for PEM files; `cleanup` removes it. */
export const tempDir = (): {
  dir: string;
  write: (name: string, text: string) => string;
  cleanup: () => void;
} => {
  const dir = mkdtempSync(join(tmpdir(), 'teeml-tls-'));
  return {
    dir,
    write: (name, text) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
};

/**
 * A leaf signed by a CA, both made by the openssl command line (independent of our code): returns
 * the chain PEM (leaf, CA), the leaf key, and openssl's own sha256 of the leaf's DER SPKI.
 */
export const opensslChain = (dir: string): { chain: string; key: string; spkiSha256: string } => {
  const sh = (script: string) =>
    execFileSync('sh', ['-c', script], { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] });
  sh('openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca');
  sh(
    'openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr -subj /CN=localhost',
  );
  sh('openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 1');
  const spkiSha256 = sh(
    'openssl x509 -in leaf.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -r',
  )
    .toString()
    .split(' ')[0] as string;
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');
  return { chain: read('leaf.pem') + read('ca.pem'), key: read('leaf.key'), spkiSha256 };
};
