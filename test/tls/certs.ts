import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
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

/**
 * A TLS terminator in front of a sidecar that binds certificate A (TLS_CERT_PATH alone, NEAR's nginx
 * layout): it forwards plain HTTP to the sidecar and counts the POSTs (prompts) it forwards.
 */
export const startTerminator = async (cert: string, key: string, upstream: string) => {
  const posts: string[] = [];
  const server: Server = createServer({ cert, key }, (req, res) => {
    if (req.method === 'POST') posts.push(req.url ?? '');
    const forward = httpRequest(
      `${upstream}${req.url ?? '/'}`,
      { method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    posts,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};
