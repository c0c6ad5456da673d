import { createHash } from 'node:crypto';
import { type Contract, formatEther, parseEther, Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SidecarError } from '../../src/errors/index.js';
import { parseAttestation, responseIdOf, verifyReport, verifySignedText } from '../../src/verifier/index.js';
import { BROKER_QUOTE_SCHEME, createZgLink, type ZgLink } from '../../src/zg/index.js';
import { rejection } from '../rejection.js';
import { SECRET_MARKERS } from '../secrets.js';
import type { BrokerDouble } from './broker-double.js';
import type { LocalChain } from './chain.js';
import { MODELS, PRICES, startZgWorld, USER_KEY, type ZgWorld } from './world.js';

/**
 * The 0G mode for real, offline: the official SDK against a local chain with 0G's serving contracts,
 * provider broker doubles in both layouts, and a real (simulated) sidecar behind them.
 */

const sha = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');
const GWEI = 1_000_000_000;
const LATE_KEY = '0x1b0c0a5f6e8d4c2b3a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f0e1d2c3b4a';
const DRY_KEY = '0x2c1d0b6a7f9e5d3c4b2a1909f8e7d6c5b4a39281f8e7d6c5b4a3928f1e2d3c4b';
const { inputPrice: INPUT_PRICE, outputPrice: OUTPUT_PRICE } = PRICES;

let world: ZgWorld;
let chain: LocalChain;
let sidecarAddress: string;
let separated: BrokerDouble;
let signing: BrokerDouble;
let wrongSigner: BrokerDouble;
const links: ZgLink[] = [];
const consoleLines: string[] = [];
const bearerTokens: string[] = [];

/** The SDK writes to the console; keep it off the test output and check it for secrets. */
const captureConsole = () => {
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      consoleLines.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
    });
  }
};

const link = async (provider: string, extra: Partial<Parameters<typeof createZgLink>[0]> = {}) => {
  const created = await createZgLink({
    rpcUrl: chain.rpcUrl,
    provider,
    privateKey: USER_KEY,
    gasPrice: GWEI,
    // The background timer never fires during a test; the first check runs at start.
    autoFunding: { intervalMs: 3_600_000 },
    ...extra,
  });
  links.push(created);
  return created;
};

interface Answer {
  status: number;
  headers: Headers;
  body: Uint8Array;
  sent: Uint8Array;
}

const chat = async (l: ZgLink, model: string, stream: boolean): Promise<Answer> => {
  // Keys out of Go's order and an HTML character, so a broker's re-serialization shows.
  const sent = new TextEncoder().encode(
    JSON.stringify({
      stream,
      model,
      messages: [{ role: 'user', content: `${SECRET_MARKERS.prompt} <b>` }],
      max_tokens: 8,
    }),
  );
  const headers = await l.requestHeaders({ openAiPath: '/chat/completions', body: sent });
  bearerTokens.push(...Object.values(headers));
  const res = await fetch(l.endpoint('/chat/completions'), {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json', 'accept-encoding': 'identity' },
    body: sent,
  });
  return { status: res.status, headers: res.headers, body: new Uint8Array(await res.arrayBuffer()), sent };
};

const signatureFor = async (l: ZgLink, id: string) => {
  const res = await fetch(l.signatureUrl(id, 'ecdsa'));
  expect(res.status).toBe(200);
  return (await res.json()) as { text: string; signature: string; signing_address: string };
};

const usageOf = (answer: Answer, stream: boolean): { prompt_tokens: number; completion_tokens: number } => {
  const text = new TextDecoder().decode(answer.body);
  if (!stream)
    return (JSON.parse(text) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
  const chunks = text
    .split('\n')
    .filter((l) => l.startsWith('data: {'))
    .map((l) => JSON.parse(l.slice(6)) as { usage?: { prompt_tokens: number; completion_tokens: number } });
  const usage = chunks.findLast((c) => c.usage !== undefined)?.usage;
  if (usage === undefined) throw new Error('no usage chunk');
  return usage;
};

const feeOf = (u: { prompt_tokens: number; completion_tokens: number }) =>
  BigInt(u.prompt_tokens) * INPUT_PRICE + BigInt(u.completion_tokens) * OUTPUT_PRICE;

const subAccount = async (user: string, provider: string) =>
  (await chain.inference.getFunction('getAccount')(user, provider)) as {
    balance: bigint;
    pendingRefund: bigint;
  };

beforeAll(async () => {
  captureConsole();
  world = await startZgWorld([USER_KEY, LATE_KEY, DRY_KEY]);
  ({ chain, sidecarAddress, separated, signing, wrongSigner } = world);
});

afterAll(async () => {
  for (const l of links) await l.close();
  await world?.close();
  vi.restoreAllMocks();
});

describe('0G mode against a local chain, separated layout (broker forwards to the sidecar)', () => {
  it('finds the provider by model name, pays through the SDK, and every answer verifies against the chain signer', async () => {
    const user = new Wallet(USER_KEY).address;
    let clock = 0;
    const l = await link(MODELS.separated, {
      now: () => clock,
      chainCacheMs: 1000,
      createLedger: 10,
      ledgerAddress: chain.ledgerAddress,
      inferenceAddress: chain.inferenceAddress,
    });
    expect(l.providerAddress).toBe(separated.providerAddress);
    expect(l.layout).toBe('separated');
    expect(l.requestHashComparable).toBe(false);
    expect(await l.describe()).toMatchObject({
      mode: '0g',
      chain_id: '31337',
      provider: separated.providerAddress,
      layout: 'separated',
      inference_contract: chain.inferenceAddress,
    });
    // Acknowledged on first use, and auto-funding topped the sub-account up to its 2 x 1 0G buffer.
    const funded = await subAccount(user, separated.providerAddress);
    expect(funded.balance).toBe(parseEther('2'));
    expect(await l.expectedSigner()).toBe(sidecarAddress);

    let fees = 0n;
    for (const stream of [false, true]) {
      const answer = await chat(l, MODELS.separated, stream);
      expect(answer.status).toBe(200);
      const id = responseIdOf(answer.headers, answer.body, stream);
      expect(id).toMatch(/^chatcmpl-/);
      const record = await signatureFor(l, id ?? '');
      // The response hash covers exactly the bytes received; the request hash covers the broker's
      // re-serialized copy, which is why the link says requestHashComparable = false.
      const [reqHash, resHash] = record.text.split(':');
      expect(resHash).toBe(sha(answer.body));
      expect(reqHash).not.toBe(sha(answer.sent));
      expect(reqHash).toBe(sha(separated.forwarded.at(-1) ?? Buffer.alloc(0)));
      const verdict = verifySignedText(
        'ecdsa',
        record.text,
        record.signature,
        (await l.expectedSigner()) ?? '',
      );
      expect(verdict.ok).toBe(true);
      expect(await l.afterAnswer({ id: id ?? '', responseBody: answer.body, streamed: stream })).toBe(true);
      fees += feeOf(usageOf(answer, stream));
    }
    expect(fees).toBeGreaterThan(0n);
    expect(separated.unsettled(user)).toBe(fees);
    expect((await l.health())['spend_0g']).toBe(formatEther(fees));

    // The provider settles on chain: the sub-account balance moves by exactly the fees.
    const before = await subAccount(user, separated.providerAddress);
    expect(await separated.settle()).toEqual([0]);
    const after = await subAccount(user, separated.providerAddress);
    expect(before.balance - after.balance).toBe(fees);
    // /health reads the chain at most once per chainCacheMs.
    expect((await l.health())['sub_account']).toEqual({
      balance_0g: formatEther(before.balance),
      pending_refund_0g: '0.0',
    });
    clock += 1000;
    const health = await l.health();
    expect(health).toMatchObject({
      wallet: user,
      provider: separated.providerAddress,
      answers: 2,
      sdk_rejected: 0,
    });
    expect(health['sub_account']).toEqual({
      balance_0g: formatEther(after.balance),
      pending_refund_0g: '0.0',
    });
  });

  it('fetches the sidecar report behind /v1/proxy for our nonce, bound to the chain signer', async () => {
    const l = await link(separated.providerAddress);
    const nonce = new Uint8Array(32).fill(7);
    const { report, source } = await l.fetchAttestation(nonce, 'ecdsa');
    expect(source).toContain('/v1/proxy/attestation/report');
    const parsed = parseAttestation(report);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.report.request_nonce).toBe('07'.repeat(32));
    expect(parsed.report.signing_address).toBe(await l.expectedSigner());
  });
});

describe('0G attestation checked against the chain signer (src/verifier, expectAddress)', () => {
  const verifyVia = async (l: ZgLink) => {
    const nonce = new Uint8Array(32).fill(9);
    const { report } = await l.fetchAttestation(nonce, 'ecdsa');
    const expectAddress = await l.expectedSigner();
    return verifyReport(report, {
      nonce,
      nowSeconds: Math.floor(Date.now() / 1000),
      allowSimulated: true,
      offline: true,
      ...(expectAddress === undefined ? {} : { expectAddress }),
    });
  };
  const status = (result: Awaited<ReturnType<typeof verifyReport>>, id: string) =>
    result.checks.find((c) => c.id === id)?.status;

  it('the report behind a separated broker binds the key the chain names', async () => {
    const result = await verifyVia(await link(separated.providerAddress));
    expect(status(result, 'signing.expected-address')).toBe('pass');
    expect(status(result, 'report.nonce')).toBe('pass');
    expect(status(result, 'tdx.report-data')).toBe('pass');
  });

  it('a report for another key than the chain names fails signing.expected-address', async () => {
    const result = await verifyVia(await link(wrongSigner.providerAddress));
    expect(status(result, 'signing.expected-address')).toBe('fail');
    expect(result.ok).toBe(false);
  });
});

describe('0G mode against a local chain, a broker that signs in its CVM', () => {
  it('completes JSON and streaming chats by provider address; the broker id and ZG-Res-Key lead to its signature', async () => {
    const user = new Wallet(USER_KEY).address;
    // No ledger or contract addresses given: the SDK's defaults for this chain id are used.
    const l = await link(signing.providerAddress);
    expect(l.layout).toBe('broker-signed');
    expect(await l.expectedSigner()).toBe(signing.teeAddress);
    let fees = 0n;
    for (const stream of [false, true]) {
      const answer = await chat(l, MODELS.signing, stream);
      expect(answer.status).toBe(200);
      const key = answer.headers.get('zg-res-key') ?? '';
      expect(key).toMatch(/^[0-9a-f-]{36}$/);
      expect(new TextDecoder().decode(answer.body)).toContain(`"id":"chatcmpl-${key}"`);
      const id = responseIdOf(answer.headers, answer.body, stream) ?? '';
      expect(id).toBe(key);
      const record = await signatureFor(l, id);
      expect(record.text.split(':')[1]).toBe(sha(answer.body));
      expect(verifySignedText('ecdsa', record.text, record.signature, signing.teeAddress).ok).toBe(true);
      expect(await l.afterAnswer({ id, responseBody: answer.body, streamed: stream })).toBe(true);
      fees += feeOf(usageOf(answer, stream));
    }
    const before = await subAccount(user, signing.providerAddress);
    await signing.settle();
    expect(before.balance - (await subAccount(user, signing.providerAddress)).balance).toBe(fees);
  });

  it("adapts the broker's /v1/quote to the flat report, naming the signer its quote binds", async () => {
    const l = await link(signing.providerAddress);
    const { report, source } = await l.fetchAttestation(new Uint8Array(32), 'ecdsa');
    expect(source).toContain('/v1/quote');
    const parsed = parseAttestation(report);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.report.signing_address).toBe(signing.teeAddress);
    expect(parsed.report.report_data_scheme).toBe(BROKER_QUOTE_SCHEME);
    expect(typeof parsed.report.nvidia_payload).toBe('string');
  });
});

describe('0G mode refusals', () => {
  it('a wrong signer address on chain: the signature is not by expectedSigner, and the SDK agrees', async () => {
    const l = await link(MODELS.wrongSigner);
    const expected = await l.expectedSigner();
    expect(expected).not.toBe(sidecarAddress);
    const answer = await chat(l, MODELS.wrongSigner, false);
    expect(answer.status).toBe(200);
    const id = responseIdOf(answer.headers, answer.body, false) ?? '';
    const record = await signatureFor(l, id);
    const verdict = verifySignedText('ecdsa', record.text, record.signature, expected ?? '');
    expect(verdict.ok).toBe(false);
    expect(verdict.signer).toBe(sidecarAddress);
    expect(await l.afterAnswer({ id, responseBody: answer.body, streamed: false })).toBe(false);
  });

  it('start-up names what is wrong: an RPC that does not answer, contracts not there, no such provider', async () => {
    const rpc = await rejection(
      createZgLink({ rpcUrl: 'http://127.0.0.1:1', provider: 'm', privateKey: USER_KEY }),
    );
    expect(rpc).toMatchObject({ status: 502, code: 'zg_rpc_unreachable' });
    const nowhere = '0x000000000000000000000000000000000000dEaD';
    const contracts = await rejection(link('m', { ledgerAddress: nowhere, inferenceAddress: nowhere }));
    expect(contracts).toMatchObject({ status: 502, code: 'zg_contracts_unavailable' });
    expect(contracts.message).toContain('--zg-ledger-address');
    expect(await rejection(link('no/such-model'))).toMatchObject({
      status: 404,
      code: 'zg_provider_not_found',
    });
    expect(await rejection(link(nowhere))).toMatchObject({ status: 404, code: 'zg_provider_not_found' });
  });

  it('a wallet without a ledger gets a 402 naming --zg-create-ledger, and too small a ledger is refused', async () => {
    const l = await link(separated.providerAddress, { privateKey: LATE_KEY });
    const error = await rejection(l.requestHeaders({ openAiPath: '/chat/completions', body: undefined }));
    expect(error).toBeInstanceOf(SidecarError);
    expect(error).toMatchObject({ status: 402, code: 'insufficient_balance' });
    expect((error as SidecarError).message).toContain('--zg-create-ledger <amount>');
    expect((await l.health())['ledger']).toBeNull();
    const small = await rejection(link(separated.providerAddress, { privateKey: LATE_KEY, createLedger: 1 }));
    expect(small).toMatchObject({ status: 400, code: 'invalid_ledger_amount' });
  });

  it('a ledger that has run dry gets a 402 before any request reaches the provider', async () => {
    const dry = new Wallet(DRY_KEY);
    // 3 0G: 1 goes to the sub-account on acknowledgement, auto-funding (buffer 3 x 1 0G) moves the rest.
    const l = await link(separated.providerAddress, {
      privateKey: DRY_KEY,
      createLedger: 3,
      autoFunding: { intervalMs: 3_600_000, bufferMultiplier: 3 },
      chainCacheMs: 0,
    });
    expect((await l.health())['ledger']).toEqual({ total_0g: '3.0', available_0g: '0.0' });
    // The user asks for the sub-account back: it is pending refund, nothing is locked any more.
    const ledger: Contract = chain.ledgerAs(DRY_KEY);
    await (await ledger.getFunction('retrieveFund')([separated.providerAddress], 'inference-v1.0')).wait();
    expect((await subAccount(dry.address, separated.providerAddress)).pendingRefund).toBe(parseEther('3'));
    const error = await rejection(l.requestHeaders({ openAiPath: '/chat/completions', body: undefined }));
    expect(error).toMatchObject({ status: 402, code: 'insufficient_balance' });
    expect((error as SidecarError).message).toContain('run dry');
    // Signature records stay fetchable: they need no session.
    expect(await l.requestHeaders({ openAiPath: '/signature', body: undefined })).toEqual({});
  });

  it('re-reads the signer from the chain, and refuses one the contract owner no longer acknowledges', async () => {
    const l = await link(wrongSigner.providerAddress, { chainCacheMs: 0 });
    const before = await l.expectedSigner();
    expect(before).toMatch(/^0x[0-9a-fA-F]{40}$/);
    await chain.revokeAcknowledgement(wrongSigner.providerAddress);
    expect(await rejection(l.expectedSigner())).toMatchObject({
      status: 502,
      code: 'zg_signer_not_acknowledged',
    });
    expect(await rejection(link(wrongSigner.providerAddress))).toMatchObject({
      status: 400,
      code: 'zg_signer_not_acknowledged',
    });
  });

  it('never writes the wallet key or a bearer token to the console', () => {
    expect(consoleLines.length).toBeGreaterThan(0);
    expect(bearerTokens.length).toBeGreaterThan(0);
    const all = consoleLines.join('\n');
    expect(all).not.toContain(SECRET_MARKERS.zgWalletKey);
    for (const token of bearerTokens) expect(all).not.toContain(token.slice('Bearer '.length));
  });
});
