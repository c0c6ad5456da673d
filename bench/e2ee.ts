/**
 * E2EE inputs for the load rows (bodies sealed to the sidecar's attested key, the protocol headers)
 * and the per-field crypto timed on one core: what one SSE chunk or JSON field costs the sidecar.
 */
import { createE2eeClient, type E2eeSession, openE2eeSession } from '../src/e2ee/index.js';
import { createSigners, EphemeralKeySource, type SigningAlgo } from '../src/keys/index.js';

export interface E2eeVariant {
  name: string;
  headers: Record<string, string>;
  small: string;
  stream: string;
}

const sealed = (body: string, encrypt: (b: object) => object): string =>
  JSON.stringify(encrypt(JSON.parse(body)));

/** Plain, then one E2EE variant per algorithm, with the model keys read from the sidecar's report. */
export const e2eeRequests = async (port: number, small: string, stream: string): Promise<E2eeVariant[]> => {
  const variants: E2eeVariant[] = [{ name: 'plain', headers: {}, small, stream }];
  for (const algo of ['ecdsa', 'ed25519'] as const) {
    const res = await fetch(`http://127.0.0.1:${port}/v1/attestation/report?signing_algo=${algo}`);
    const report = (await res.json()) as { model_attestations: Array<{ signing_public_key: string }> };
    const key = report.model_attestations[0]?.signing_public_key as string;
    const client = createE2eeClient({ algo, modelPublicKey: key });
    variants.push({
      name: `E2EE ${algo}`,
      headers: { ...client.headers },
      small: sealed(small, (b) => client.encryptRequest(b)),
      stream: sealed(stream, (b) => client.encryptRequest(b)),
    });
  }
  return variants;
};

const timeIt = (seconds: number, fn: () => unknown): { perSecond: number; usPerOp: number } => {
  for (let i = 0; i < 200; i++) fn();
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  let n = 0;
  while (performance.now() < end) {
    fn();
    n++;
  }
  const ms = performance.now() - start;
  return { perSecond: (n * 1000) / ms, usPerOp: (ms * 1000) / n };
};

export const runE2eeCrypto = async (
  seconds: number,
): Promise<Array<{ name: string; perSecond: number; usPerOp: number }>> => {
  const signers = createSigners(await new EphemeralKeySource().load());
  const rows: Array<{ name: string; perSecond: number; usPerOp: number }> = [];
  const field = 'tok123 and a few more';
  for (const algo of ['ecdsa', 'ed25519'] as SigningAlgo[]) {
    const client = createE2eeClient({ algo, modelPublicKey: signers.get(algo).publicKey });
    const headers = Object.fromEntries(Object.entries(client.headers).map(([k, v]) => [k.toLowerCase(), v]));
    const session = openE2eeSession((n) => headers[n], '/chat/completions', signers) as E2eeSession;
    const toServer = client.encrypt(field);
    const fresh = () => openE2eeSession((n) => headers[n], '/chat/completions', signers) as E2eeSession;
    rows.push({
      name: `${algo}: first answer field (headers parsed, key agreement, seal): once per answer`,
      ...timeIt(seconds, () => fresh().seal(field)),
    });
    rows.push({
      name: `${algo}: each further answer field (one SSE chunk)`,
      ...timeIt(seconds, () => session.seal(field)),
    });
    rows.push({
      name: `${algo}: open one request field (one ECDH with the signer's key)`,
      ...timeIt(seconds, () => session.open(toServer)),
    });
  }
  return rows;
};
