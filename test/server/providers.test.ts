import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log/index.js';
import { selectProviders, startSidecar } from '../../src/server/index.js';
import { nativeDouble, sharedFixtures } from '../paths.js';

const logger = createLogger('silent');
const missing = join(tmpdir(), 'teeml-no-such-path');

describe('TEE_PROVIDER=auto', () => {
  it('takes libtdx_attest when neither the dstack socket nor configfs-tsm exists', async () => {
    const p = await selectProviders(
      loadConfig({
        TEE_PROVIDER: 'auto',
        GPU_EVIDENCE: 'none',
        DSTACK_SOCKET: missing,
        TSM_REPORT_ROOT: missing,
        LIBTDX_ATTEST_PATH: nativeDouble('libtdx_attest.so.1'),
      }),
      logger,
    );
    expect(p.quotes.platform).toBe('libtdx');
    expect(p.quotes.simulated).toBe(false);
  });

  it('prefers the dstack socket when it exists', async () => {
    const socket = join(tmpdir(), `teeml-dstack-${process.pid}.sock`);
    writeFileSync(socket, '');
    const p = await selectProviders(
      loadConfig({
        TEE_PROVIDER: 'auto',
        GPU_EVIDENCE: 'none',
        DSTACK_SOCKET: socket,
        TSM_REPORT_ROOT: missing,
      }),
      logger,
    );
    expect(p.quotes.platform).toBe('dstack');
  });

  it('refuses to start with no TEE, and simulates only when told to', async () => {
    const env = {
      TEE_PROVIDER: 'auto',
      GPU_EVIDENCE: 'none',
      DSTACK_SOCKET: missing,
      TSM_REPORT_ROOT: missing,
      LIBTDX_ATTEST_PATH: missing,
    };
    await expect(selectProviders(loadConfig(env), logger)).rejects.toMatchObject({ code: 'tee_not_found' });
    const p = await selectProviders(loadConfig({ ...env, TEE_AUTO_ALLOW_SIMULATED: 'true' }), logger);
    expect(p.quotes.platform).toBe('simulated');
    expect(p.quotes.simulated).toBe(true);
  });

  it('rejects configurations that would mix a real TEE with simulated GPU evidence', () => {
    expect(() => loadConfig({ TEE_PROVIDER: 'dstack' })).toThrow(/GPU_EVIDENCE/);
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ ADMIN_TOKEN: 'short' })).toThrow(/ADMIN_TOKEN/);
    expect(() => loadConfig({ ADMIN_TOKEN: 'short' })).not.toThrow(/short/);
    expect(() => loadConfig({ SIGNATURE_TTL_SECONDS: '600' })).toThrow(/SIGNATURE_TTL_SECONDS/);
  });
});

describe('NRAS_SELF_CHECK', () => {
  it('refuses to serve when NRAS rejects our own evidence', async () => {
    const dir = sharedFixtures('e2e/phalacloud_phala_deepseek-v3.2_20260610_014917_NEGATIVE_nras/responses');
    const answer = readFileSync(join(dir, '0006_nras.attestation.nvidia.com_v3_attest_gpu.body'));
    const jwks = readFileSync(join(dir, '0007_nras.attestation.nvidia.com_.well-known_jwks.json.body'));
    const seen: string[] = [];
    const nras = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(req.url === '/.well-known/jwks.json' ? jwks : answer);
      });
    });
    await new Promise<void>((r) => nras.listen(0, '127.0.0.1', r));
    const { port } = nras.address() as AddressInfo;
    try {
      const config = loadConfig({
        HOST: '127.0.0.1',
        PORT: '0',
        NRAS_SELF_CHECK: 'true',
        NRAS_URL: `http://127.0.0.1:${port}`,
      });
      await expect(startSidecar(config, logger)).rejects.toMatchObject({ code: 'nras_self_check_failed' });
      expect(seen).toContain('POST /v3/attest/gpu');
    } finally {
      nras.close();
    }
  });
});
