import { createHash } from 'node:crypto';
import { encodeAbiParameters, encodeFunctionData, parseAbi } from 'viem';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { findAdditionalInfo, GET_SERVICE_SELECTOR, runDoctor } from '../../src/doctor/index.js';
import { createSigners } from '../../src/keys/index.js';
import { type FakeAgent, sendJson, startFakeAgent } from '../dstack/agent-server.js';
import { baseDeps, byId, cleanupScratch, config, json, type Loopback, startLoopback } from './harness.js';

const kmsKey = (path: string): string => createHash('sha256').update(path).digest('hex');
const OURS = createSigners({
  secp256k1: Buffer.from(kmsKey('teeml-sidecar/signing'), 'hex'),
  ed25519: Buffer.from(kmsKey('teeml-sidecar/signing/ed25519'), 'hex'),
}).ecdsa.address;
const CONTRACT = '0x47340d900bdFec2BD393c626E12ea0656F938d84';
const PROVIDER = '0x4870CbC4D07d6Ac2EE5aA865588e5985FE77a4E9';

/** A Service struct as 0G's inference serving contract returns it, encoded by viem (independent of our scan). */
const SERVICE = [
  { name: 'provider', type: 'address' },
  { name: 'serviceType', type: 'string' },
  { name: 'url', type: 'string' },
  { name: 'inputPrice', type: 'uint256' },
  { name: 'outputPrice', type: 'uint256' },
  { name: 'updatedAt', type: 'uint256' },
  { name: 'model', type: 'string' },
  { name: 'verifiability', type: 'string' },
  { name: 'additionalInfo', type: 'string' },
  { name: 'teeSignerAddress', type: 'address' },
  { name: 'teeSignerAcknowledged', type: 'bool' },
] as const;
const encodeService = (additionalInfo: string) =>
  encodeAbiParameters(
    [{ type: 'tuple', components: SERVICE }],
    [
      {
        provider: PROVIDER,
        serviceType: 'chatbot',
        url: 'https://broker.example',
        inputPrice: 1n,
        outputPrice: 2n,
        updatedAt: 1_780_000_000n,
        model: '{not json',
        verifiability: 'TeeML',
        additionalInfo,
        teeSignerAddress: `0x${'77'.repeat(20)}`,
        teeSignerAcknowledged: true,
      },
    ],
  );

let agent: FakeAgent | undefined;
let rpc: Loopback | undefined;
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  await rpc?.close();
  rpc = undefined;
});
afterAll(cleanupScratch);

const chainCheck = async (
  answer: (body: { params: [{ to: string; data: string }] }) => unknown,
  flags: Record<string, string> = {},
) => {
  agent = await startFakeAgent((req, res) => {
    const { path } = JSON.parse(req.body.toString()) as { path: string };
    sendJson(res, { key: kmsKey(path), signature_chain: [] });
  });
  rpc = await startLoopback((req, res) => json(res, answer(JSON.parse(req.body))));
  const results = await runDoctor(
    config({ KEY_SOURCE: 'dstack', DSTACK_SOCKET: agent.socketPath }),
    { zgRpcUrl: rpc.url, zgServingContract: CONTRACT, zgProviderAddress: PROVIDER, ...flags },
    baseDeps(),
  );
  return byId(results, 'zg.chain');
};

describe('doctor: 0G service on chain', () => {
  it('calls getService(provider) with the selector viem computes', () => {
    const data = encodeFunctionData({ abi: parseAbi(['function getService(address)']), args: [PROVIDER] });
    expect(`0x${GET_SERVICE_SELECTOR}`).toBe(data.slice(0, 10));
    expect(GET_SERVICE_SELECTOR).toBe('15a52302');
  });

  it('finds additionalInfo in the encoded struct whatever its position', () => {
    const info = '{"TargetSeparated":true,"TargetTeeAddress":"0xabc"}';
    expect(findAdditionalInfo(Buffer.from(encodeService(info).slice(2), 'hex'))).toEqual(JSON.parse(info));
    expect(findAdditionalInfo(new Uint8Array(64))).toBeUndefined();
  });

  it('TargetSeparated and TargetTeeAddress = ours: pass; the eth_call is exactly getService(provider)', async () => {
    let seen: { to: string; data: string } | undefined;
    const r = await chainCheck((body) => {
      seen = body.params[0];
      return {
        jsonrpc: '2.0',
        id: 1,
        result: encodeService(
          JSON.stringify({
            VerifierURL: '',
            TEEVerifier: 'dstack',
            TargetSeparated: true,
            TargetTeeAddress: OURS.toLowerCase(),
          }),
        ),
      };
    });
    expect(r).toMatchObject({
      status: 'pass',
      detail: expect.stringContaining(`TargetTeeAddress equals our signing address ${OURS}`),
    });
    expect(seen).toEqual({
      to: CONTRACT,
      data: encodeFunctionData({ abi: parseAbi(['function getService(address)']), args: [PROVIDER] }),
    });
  });

  it('another registered address: fail with what to set', async () => {
    const other = `0x${'12'.repeat(20)}`;
    const r = await chainCheck(() => ({
      result: encodeService(JSON.stringify({ TargetSeparated: true, TargetTeeAddress: other })),
    }));
    expect(r).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining(`TargetTeeAddress ${other} is not our signing address`),
      hint: expect.stringContaining(OURS),
    });
  });

  it('TargetSeparated false: SDKs would check another signer', async () => {
    const r = await chainCheck(() => ({
      result: encodeService(JSON.stringify({ TargetSeparated: false, TargetTeeAddress: '' })),
    }));
    expect(r).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('TargetSeparated is not true'),
    });
  });

  it('a revert (no service registered) fails with the reason', async () => {
    const r = await chainCheck(() => ({
      jsonrpc: '2.0',
      id: 1,
      error: { code: 3, message: 'execution reverted: Service not found' },
    }));
    expect(r).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('reverted or failed (execution reverted: Service not found)'),
    });
  });

  it('partial flags fail; none skip', async () => {
    const r = await runDoctor(config(), { zgRpcUrl: 'http://127.0.0.1:9' }, baseDeps());
    expect(byId(r, 'zg.chain')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('together'),
    });
    expect(byId(await runDoctor(config(), {}, baseDeps()), 'zg.chain').status).toBe('skip');
  });
});
