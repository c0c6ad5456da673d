import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runDoctor } from '../../src/doctor/index.js';
import { type ConfigfsFs, nodeConfigfsFs, SimulatedQuoteProvider } from '../../src/tdx/index.js';
import { type FakeAgent, sendJson, startFakeAgent } from '../dstack/agent-server.js';
import { sharedFixtures } from '../paths.js';
import { type FakeTapp, startFakeTapp, tappEvidence } from '../tapp/tapp-server.js';
import { fixtureQuotes } from '../tdx/fixture-quotes.js';
import { baseDeps, byId, cleanupScratch, config, LIBTDX, scratch, tdxDouble } from './harness.js';

const INFO = readFileSync(sharedFixtures('dstack/nearai-sample/SAMPLE_DSTACK_INFO.json'));
const kmsKey = (path: string): string => createHash('sha256').update(path).digest('hex');
const only = ['tee.present', 'tee.provider', 'tee.quote', 'tee.verify'];
const tee = async (...args: Parameters<typeof runDoctor>) =>
  (await runDoctor(...args)).filter((r) => only.includes(r.id));

let agent: FakeAgent | undefined;
let tapp: FakeTapp | undefined;
beforeEach(() => {
  tdxDouble.reset();
});
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  await tapp?.close();
  tapp = undefined;
});
afterAll(cleanupScratch);

describe('doctor: TEE checks', () => {
  it('on a machine without TDX: says no interface is visible, auto finds nothing, no quote', async () => {
    const results = await tee(config({ TEE_PROVIDER: 'auto', GPU_EVIDENCE: 'none' }), {}, baseDeps());
    expect(results.map((r) => [r.id, r.status])).toEqual([
      ['tee.present', 'fail'],
      ['tee.provider', 'fail'],
      ['tee.quote', 'skip'],
      ['tee.verify', 'skip'],
    ]);
    expect(results[0]?.detail).toMatch(
      /^no TEE interface found \(dstack socket .*: no; configfs-tsm .*: no; .*tdx_guest: no; .*libtdx_attest.so.1: not found; tapp unix:.*: no\)$/,
    );
    expect(results[0]?.hint).toContain('/var/run/dstack.sock');
    expect(results[1]?.detail).toContain('TEE_PROVIDER=auto found no TEE');
  });

  it('/dev/tdx_guest alone is a TDX guest without a quote interface', async () => {
    const device = join(scratch, 'tdx_guest');
    writeFileSync(device, '');
    const [present] = await tee(
      config({ TEE_PROVIDER: 'auto', GPU_EVIDENCE: 'none' }),
      {},
      baseDeps({ tdxGuestDevice: device }),
    );
    expect(present).toMatchObject({ status: 'fail', hint: expect.stringContaining('libtdx-attest') });
    expect(present?.detail).toContain('a TDX guest without a quote interface');
  });

  it('libtdx_attest without the TDX guest device is no quote interface', async () => {
    const results = await tee(
      config({ TEE_PROVIDER: 'auto', GPU_EVIDENCE: 'none', LIBTDX_ATTEST_PATH: LIBTDX }),
      {},
      baseDeps(),
    );
    expect(byId(results, 'tee.present')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('libtdx_attest without'),
      hint: expect.stringContaining('not a TDX guest'),
    });
  });

  it('TEE_PROVIDER=simulated is a failure for production, and no quote is taken', async () => {
    const results = await tee(config(), {}, baseDeps());
    expect(byId(results, 'tee.provider')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('simulated'),
    });
    expect(byId(results, 'tee.quote')).toMatchObject({ status: 'skip' });
  });

  it('auto with TEE_AUTO_ALLOW_SIMULATED falls back to simulated: a failure, not a pass', async () => {
    const results = await tee(
      config({ TEE_PROVIDER: 'auto', TEE_AUTO_ALLOW_SIMULATED: 'true', GPU_EVIDENCE: 'none' }),
      {},
      baseDeps(),
    );
    expect(byId(results, 'tee.provider')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('fell back to SIMULATED'),
    });
    expect(byId(results, 'tee.quote').status).toBe('skip');
  });

  it('auto picks libtdx_attest (the C double) and says why; a real quote round trip through koffi', async () => {
    const device = join(scratch, 'tdx_guest');
    writeFileSync(device, '');
    const results = await tee(
      config({ TEE_PROVIDER: 'auto', GPU_EVIDENCE: 'none', LIBTDX_ATTEST_PATH: LIBTDX }),
      {},
      baseDeps({ tdxGuestDevice: device }),
    );
    expect(byId(results, 'tee.present')).toMatchObject({
      status: 'pass',
      detail: expect.stringContaining('libtdx_attest.so.1: loads'),
    });
    expect(byId(results, 'tee.provider')).toMatchObject({
      status: 'pass',
      detail: expect.stringMatching(
        /^TEE_PROVIDER=auto picks libtdx: no dstack socket, no configfs-tsm; .*libtdx_attest.so.1 produced a quote$/,
      ),
    });
    const quote = byId(results, 'tee.quote');
    expect(quote.status).toBe('pass');
    expect(quote.detail).toMatch(
      /^libtdx: quote v4 \(\d+ B\), report_data = ours, TD_ATTRIBUTES [0-9a-f]{16} \(debug off\), MRTD d0d0d0d0d0d0d0d0…$/,
    );
    // Collateral unreachable: a warning that the TCB status is unknown, with what to do.
    expect(byId(results, 'tee.verify')).toMatchObject({
      status: 'warn',
      detail: expect.stringContaining(
        'collateral from https://api.trustedservices.intel.com not reachable: fetch failed (ECONNREFUSED)',
      ),
      hint: expect.stringContaining('--pccs-url'),
    });
  });

  it('a libtdx_attest error code is a failed quote with the QGS hint', async () => {
    tdxDouble.setRc(8);
    const results = await tee(
      config({ TEE_PROVIDER: 'libtdx', GPU_EVIDENCE: 'none', LIBTDX_ATTEST_PATH: LIBTDX }),
      {},
      baseDeps(),
    );
    expect(byId(results, 'tee.provider').status).toBe('pass');
    expect(byId(results, 'tee.quote')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('TDX_ATTEST_ERROR_QUOTE_FAILURE (0x0008)'),
      hint: expect.stringContaining('QGS'),
    });
    expect(byId(results, 'tee.verify').status).toBe('skip');
  });

  it('a configured provider whose interface is missing fails, naming it', async () => {
    const results = await tee(
      config({ TEE_PROVIDER: 'dstack', GPU_EVIDENCE: 'none' }),
      {},
      baseDeps({ timeouts: { 'tee.quote': 2000 } }),
    );
    expect(byId(results, 'tee.provider')).toMatchObject({
      status: 'fail',
      detail: 'TEE_PROVIDER=dstack is configured, but its interface is not visible (see tee.present)',
    });
    expect(byId(results, 'tee.quote')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('dstack:'),
    });
  });

  it('dstack: auto picks the socket; a real quote verifies with dcap-qvl and a collateral file (UpToDate)', async () => {
    const sample = fixtureQuotes()[0]!;
    const reportData = sample.bytes.slice(568, 632);
    agent = await startFakeAgent((req, res) => {
      if (req.path === '/Info') return sendJson(res, INFO);
      if (req.path === '/GetKey') {
        const { path } = JSON.parse(req.body.toString()) as { path: string };
        return sendJson(res, { key: kmsKey(path), signature_chain: [] });
      }
      sendJson(res, { quote: Buffer.from(sample.bytes).toString('hex'), event_log: '[]' });
    });
    const results = await tee(
      config({ TEE_PROVIDER: 'auto', GPU_EVIDENCE: 'none', DSTACK_SOCKET: agent.socketPath }),
      { collateralPath: sharedFixtures(sample.collateral) },
      baseDeps({
        random: (n) => (n === 64 ? reportData.slice() : new Uint8Array(n)),
        now: () => new Date(sample.nowSecs * 1000),
      }),
    );
    expect(byId(results, 'tee.provider').detail).toMatch(
      /^TEE_PROVIDER=auto picks dstack: .*dstack.sock exists \(checked first\)$/,
    );
    expect(byId(results, 'tee.quote')).toMatchObject({
      status: 'pass',
      detail: expect.stringContaining('dstack: quote v4 (5006 B), report_data = ours'),
    });
    expect(byId(results, 'tee.verify')).toMatchObject({
      status: 'pass',
      detail: expect.stringMatching(
        /^dcap-qvl verified the quote with collateral file .*tdx_quote_collateral.json: TCB UpToDate$/,
      ),
    });
  });

  it('the same quote at the real current time: dcap-qvl rejects it (expired collateral) and the doctor fails', async () => {
    const sample = fixtureQuotes()[0]!;
    agent = await startFakeAgent((req, res) =>
      req.path === '/Info'
        ? sendJson(res, INFO)
        : sendJson(res, { quote: Buffer.from(sample.bytes).toString('hex'), event_log: '[]' }),
    );
    const results = await tee(
      config({ TEE_PROVIDER: 'dstack', GPU_EVIDENCE: 'none', DSTACK_SOCKET: agent.socketPath }),
      { collateralPath: sharedFixtures(sample.collateral) },
      baseDeps({
        random: (n) => (n === 64 ? sample.bytes.slice(568, 632) : new Uint8Array(n)),
        now: () => new Date('2027-01-01T00:00:00Z'),
      }),
    );
    expect(byId(results, 'tee.verify')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('dcap-qvl rejected the quote'),
    });
  });

  it('a collateral file that is not collateral fails with what to give', async () => {
    const bad = join(scratch, 'collateral.json');
    writeFileSync(bad, '{"tcb_info":1}');
    const results = await tee(
      config({ TEE_PROVIDER: 'libtdx', GPU_EVIDENCE: 'none', LIBTDX_ATTEST_PATH: LIBTDX }),
      { collateralPath: bad },
      baseDeps(),
    );
    expect(byId(results, 'tee.verify')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('missing or malformed fields'),
    });
  });

  it('configfs-tsm: a temp dir playing the kernel; auto picks it after dstack', async () => {
    const root = await fsp.mkdtemp(join(scratch, 'tsm-'));
    const results = await tee(
      config({ TEE_PROVIDER: 'auto', GPU_EVIDENCE: 'none', TSM_REPORT_ROOT: root }),
      {},
      baseDeps({ configfsFs: fakeKernel() }),
    );
    expect(byId(results, 'tee.provider').detail).toBe(
      `TEE_PROVIDER=auto picks configfs-tsm: no dstack socket; ${root} exists`,
    );
    expect(byId(results, 'tee.quote')).toMatchObject({
      status: 'pass',
      detail: expect.stringContaining('configfs-tsm: quote v4'),
    });
    expect(await fsp.readdir(root)).toEqual([]);
  });

  it('configfs-tsm: a TD in debug mode fails the quote check', async () => {
    const root = await fsp.mkdtemp(join(scratch, 'tsm-'));
    const results = await tee(
      config({ TEE_PROVIDER: 'configfs-tsm', GPU_EVIDENCE: 'none', TSM_REPORT_ROOT: root }),
      {},
      baseDeps({ configfsFs: fakeKernel({ debug: true }) }),
    );
    expect(byId(results, 'tee.quote')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/TD_ATTRIBUTES 01[0-9a-f]{14}: DEBUG bit set$/),
      hint: expect.stringContaining('debug'),
    });
  });

  it('configfs-tsm: a directory that is not configfs (no kernel behind it) fails the quote', async () => {
    const root = await fsp.mkdtemp(join(scratch, 'tsm-'));
    const results = await tee(
      config({ TEE_PROVIDER: 'configfs-tsm', GPU_EVIDENCE: 'none', TSM_REPORT_ROOT: root }),
      {},
      baseDeps(),
    );
    expect(byId(results, 'tee.present').status).toBe('pass');
    expect(byId(results, 'tee.quote')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('configfs-tsm read generation failed with ENOENT'),
      hint: expect.stringContaining('root'),
    });
  });

  it('tapp: the quote binds our 64 bytes through sha512(runtime_data)', async () => {
    type Call = ServerUnaryCall<{ app_id: string; nonce: Buffer }, unknown>;
    tapp = await startFakeTapp({
      GetEvidence: (call: Call, cb: sendUnaryData<unknown>) =>
        cb(null, {
          success: true,
          message: 'ok',
          evidence: tappEvidence(call.request.nonce, `0x${'5e'.repeat(20)}`).evidence,
          tee_type: 'TDX',
          timestamp: '1782700000',
        }),
    });
    const results = await tee(
      config({
        TEE_PROVIDER: 'tapp',
        TAPP_APP_ID: 'teeml-app',
        GPU_EVIDENCE: 'none',
        TAPP_ENDPOINT: tapp.endpoint,
      }),
      {},
      baseDeps(),
    );
    expect(byId(results, 'tee.present').detail).toContain(`tapp ${tapp.endpoint}: yes`);
    expect(byId(results, 'tee.quote')).toMatchObject({
      status: 'pass',
      detail: expect.stringContaining(
        'tapp: quote v4 (5006 B), report_data = sha512(runtime_data) carrying ours',
      ),
    });
  });

  it('a hung quote device costs one deadline: the doctor reports it and goes on', async () => {
    tdxDouble.setDelayMs(1500);
    const all = await runDoctor(
      config({ TEE_PROVIDER: 'libtdx', GPU_EVIDENCE: 'none', LIBTDX_ATTEST_PATH: LIBTDX }),
      {},
      baseDeps({ timeouts: { 'tee.quote': 100 } }),
    );
    expect(byId(all, 'tee.quote')).toMatchObject({
      status: 'fail',
      detail: 'no answer within 100 ms',
      hint: expect.stringContaining('did not answer'),
    });
    expect(byId(all, 'tee.verify').status).toBe('skip');
    // Every later check still ran.
    expect(all.at(-1)?.id).toBe('zg.chain');
  });
});

describe('doctor: collateral that never arrives', () => {
  it('a PCS that does not answer is a warning (TCB unknown), not a failed check', async () => {
    const results = await tee(
      config({ TEE_PROVIDER: 'libtdx', GPU_EVIDENCE: 'none', LIBTDX_ATTEST_PATH: LIBTDX }),
      { pccsUrl: 'https://pccs.example/sgx/certification/v4/' },
      baseDeps({ getCollateral: () => new Promise(() => undefined), timeouts: { 'tee.verify': 2600 } }),
    );
    expect(byId(results, 'tee.verify')).toMatchObject({
      status: 'warn',
      detail:
        'collateral from https://pccs.example/sgx/certification/v4/ not reachable: no answer within 600 ms; quote not verified, TCB status unknown',
    });
  });
});

/** configfs-tsm as the kernel documents it, on a real temp dir (test/tdx/configfs-tsm.test.ts). */
const fakeKernel = (options: { debug?: boolean } = {}): ConfigfsFs => {
  const sim = new SimulatedQuoteProvider();
  return {
    mkdir: async (path) => {
      await nodeConfigfsFs.mkdir(path);
      await fsp.writeFile(join(path, 'generation'), '0\n');
      await fsp.writeFile(join(path, 'provider'), 'tdx_guest\n');
    },
    rmdir: (path) => fsp.rm(path, { recursive: true }),
    readFile: async (path) => {
      if (path.endsWith('/outblob')) {
        const inblob = await nodeConfigfsFs.readFile(join(posix.dirname(path), 'inblob'));
        const quote = sim.buildQuote(inblob);
        // TD_ATTRIBUTES (v4 @168) bit 0: DEBUG.
        if (options.debug) quote[168] = 0x01;
        await fsp.writeFile(path, quote);
      }
      return nodeConfigfsFs.readFile(path);
    },
    writeFile: async (path, data) => {
      await nodeConfigfsFs.writeFile(path, data);
      const gen = join(posix.dirname(path), 'generation');
      await fsp.writeFile(gen, `${Number(await fsp.readFile(gen, 'utf8')) + 1}\n`);
    },
  };
};
