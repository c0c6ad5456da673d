import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import koffi from 'koffi';
import { type Config, loadConfig } from '../../src/config/index.js';
import type { CheckResult, DoctorDeps } from '../../src/doctor/index.js';
import {
  assertGpuEvidence,
  loadSyntheticGpuFixtures,
  NVIDIA_DEVICE_IDENTITY_CA_SHA256,
  parseNvidiaPayload,
} from '../../src/gpu/index.js';
import { nativeDouble } from '../paths.js';

/** A temp dir per test file; every path the doctor probes that should be absent lives under it. */
export const scratch = mkdtempSync(join(tmpdir(), 'teeml-doctor-'));
export const missing = (name: string) => join(scratch, 'absent', name);
export const cleanupScratch = () => rmSync(scratch, { recursive: true, force: true });

/** A machine with nothing on it: every TEE and GPU path absent, port 0 (always free). */
export const bareEnv = (overrides: Record<string, string> = {}): Record<string, string> => ({
  HOST: '127.0.0.1',
  PORT: '0',
  DSTACK_SOCKET: missing('dstack.sock'),
  TSM_REPORT_ROOT: missing('tsm/report'),
  LIBTDX_ATTEST_PATH: missing('libtdx_attest.so.1'),
  TAPP_ENDPOINT: `unix://${missing('tapp.sock')}`,
  NVML_LIBRARY_PATH: missing('libnvidia-ml.so.1'),
  ...overrides,
});

export const config = (overrides: Record<string, string> = {}): Config => loadConfig(bareEnv(overrides));

/** The clock the synthetic GPU chain and the fake NRAS tokens are valid at. */
export const NOW = new Date('2026-06-01T00:00:00Z');

export const GPU_NONCE = new Uint8Array(32).fill(0x6e);
export const REPORT_DATA = new Uint8Array(64).fill(0x3c);

/** Deterministic randomness: 64 bytes are report_data, 32 the GPU nonce. */
export const random = (n: number): Uint8Array =>
  n === 32 ? GPU_NONCE.slice() : new Uint8Array(n).fill(0x3c);

/** The local check with the synthetic root added: evidence from the NVML double chains to it. */
export const syntheticChecker: DoctorDeps['gpuEvidenceChecker'] = async () => {
  const { rootFingerprint } = await loadSyntheticGpuFixtures();
  return (list, nonce) =>
    assertGpuEvidence(list, {
      nonce,
      now: NOW,
      pinnedRoots: [NVIDIA_DEVICE_IDENTITY_CA_SHA256, rootFingerprint],
    });
};

export const baseDeps = (overrides: Partial<DoctorDeps> = {}): Partial<DoctorDeps> => ({
  random,
  now: () => NOW,
  tdxGuestDevice: missing('tdx_guest'),
  getCollateral: async () => {
    throw Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
  },
  gpuEvidenceChecker: syntheticChecker,
  ...overrides,
});

export const byId = (results: CheckResult[], id: string): CheckResult => {
  const r = results.find((x) => x.id === id);
  if (r === undefined) throw new Error(`no result ${id}`);
  return r;
};

/** Human output made stable for snapshots: temp paths and loopback ports. */
export const normalize = (text: string): string =>
  text
    .replaceAll(scratch, '<tmp>')
    .replace(/\/tmp\/teeml-[A-Za-z0-9]+\//g, '<tmp>/')
    .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>');

// ---- the C doubles ---------------------------------------------------------------------------------

export const NVML = nativeDouble('libnvidia-ml.so.1');
export const LIBTDX = nativeDouble('libtdx_attest.so.1');

const nvmlLib = koffi.load(NVML);
export const nvmlDouble = {
  reset: nvmlLib.func('void nvml_double_reset(void)'),
  fail: nvmlLib.func('int nvml_double_fail(const char *function, int rc)'),
  setDir: nvmlLib.func('int nvml_double_set_dir(const char *path)'),
  setGpus: nvmlLib.func('void nvml_double_set_gpus(unsigned int count, unsigned int arch)'),
  setCc: nvmlLib.func(
    'void nvml_double_set_cc(unsigned int env, unsigned int cc, unsigned int devtools, unsigned int multi)',
  ),
  setDelay: nvmlLib.func('void nvml_double_set_delay_ms(unsigned int ms)'),
  inits: nvmlLib.func('int64_t nvml_double_inits(void)'),
  shutdowns: nvmlLib.func('int64_t nvml_double_shutdowns(void)'),
};

const tdxLib = koffi.load(LIBTDX);
export const tdxDouble = {
  reset: tdxLib.func('void tdx_double_reset(void)'),
  setRc: tdxLib.func('void tdx_double_set_rc(uint32_t rc)'),
  setDelayMs: tdxLib.func('void tdx_double_set_delay_ms(uint32_t ms)'),
  calls: tdxLib.func('int64_t tdx_double_calls(void)'),
};

// ---- loopback servers ------------------------------------------------------------------------------

export interface Loopback {
  url: string;
  requests: { method: string; path: string; headers: IncomingMessage['headers']; body: string }[];
  close(): Promise<void>;
}

export const startLoopback = async (
  handler: (req: { method: string; path: string; body: string }, res: ServerResponse) => void | Promise<void>,
): Promise<Loopback> => {
  const requests: Loopback['requests'] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      requests.push(r);
      void handler(r, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

export const json = (res: ServerResponse, body: unknown, status = 200): void => {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(bytes.length) });
  res.end(bytes);
};

/** A fake NRAS on loopback that signs (ES384) an answer for whatever evidence it is sent. */
export const startFakeNras = async (options: { reject?: boolean } = {}): Promise<Loopback> => {
  const { privateKey, publicKey } = await generateKeyPair('ES384');
  const kid = 'doctor-test';
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid }] };
  const iat = Math.floor(NOW.getTime() / 1000) - 60;
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES384', kid })
      .setIssuer('https://nras.attestation.nvidia.com')
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + 3600)
      .sign(privateKey);
  return startLoopback(async (req, res) => {
    if (req.method === 'GET' && req.path === '/.well-known/jwks.json') return json(res, jwks);
    if (req.method !== 'POST' || req.path !== '/v3/attest/gpu') return json(res, { error: 'no' }, 404);
    const payload = parseNvidiaPayload(req.body);
    const nonce = Buffer.from(payload.nonce).toString('hex');
    const devices: Record<string, string> = {};
    for (const [i] of payload.evidenceList.entries()) {
      devices[`GPU-${i}`] = await sign({
        eat_nonce: nonce,
        measres: options.reject ? 'fail' : 'success',
        secboot: true,
        dbgstat: 'disabled',
      });
    }
    const submods = Object.fromEntries(
      Object.entries(devices).map(([name, token]) => [
        name,
        ['DIGEST', ['SHA-256', createHash('sha256').update(token).digest('hex')]],
      ]),
    );
    const overall = await sign({ eat_nonce: nonce, 'x-nvidia-overall-att-result': !options.reject, submods });
    json(res, [['JWT', overall], devices]);
  });
};
