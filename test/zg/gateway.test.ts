import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatEther, Wallet } from 'ethers';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { receiptsCommand } from '../../src/cli/receipts.js';
import { createZgLink } from '../../src/zg/index.js';
import { runGatewayCli, sink } from '../gateway/run-cli.js';
import { SECRET_MARKERS } from '../secrets.js';
import { brokerQuote, MODELS, startZgWorld, USER_KEY, type ZgWorld } from './world.js';

/**
 * `teeml-sidecar gateway --zg-*` in-process against the offline 0G network (test/zg/world.ts): an
 * unmodified `openai` client, the official SDK paying through a broker double, a real sidecar.
 */

let world: ZgWorld;
let dir: string;
const logs: string[] = [];

const run = (argv: string[], env: Record<string, string>) =>
  runGatewayCli(argv, env, (line) => logs.push(line));

const zgArgs = (provider: string) => [
  '--port',
  '0',
  '--zg-rpc',
  world.chain.rpcUrl,
  '--zg-provider',
  provider,
  '--policy',
  join(dir, 'policy.json'),
];
const ENV = () => ({ ZG_PRIVATE_KEY: USER_KEY, TEEML_GATEWAY_ALLOW_SIMULATED: 'true' });

beforeAll(async () => {
  // The SDK writes its transactions to the console; keep them off the test output.
  for (const m of ['log', 'info', 'warn'] as const) vi.spyOn(console, m).mockImplementation(() => undefined);
  world = await startZgWorld([USER_KEY]);
  dir = mkdtempSync(join(tmpdir(), 'teeml-zg-gateway-'));
  writeFileSync(join(dir, 'policy.json'), '{"offline":true}');
  // Ledger, acknowledgement and a funded sub-account up front, with a set gas price: the CLI has
  // no gas price option, so the SDK would ask the node and pause a second per transaction.
  for (const provider of [world.separated.providerAddress, world.signing.providerAddress]) {
    const link = await createZgLink({
      rpcUrl: world.chain.rpcUrl,
      provider,
      privateKey: USER_KEY,
      createLedger: 10,
      gasPrice: 1_000_000_000,
    });
    await link.close();
  }
});

afterAll(async () => {
  await world?.close();
  rmSync(dir, { recursive: true, force: true });
  vi.restoreAllMocks();
});

describe('teeml-sidecar gateway in 0G mode', () => {
  it('an unmodified openai client completes JSON and streaming chats, each verified, receipted and paid', async () => {
    const receipts = join(dir, 'receipts.jsonl');
    const { gateway, out, stop } = await run([...zgArgs(MODELS.separated), '--receipts', receipts], ENV());
    expect(gateway).toBeDefined();
    expect(out.text()).toContain(`attested, signing address ${world.sidecarAddress}`);
    const url = gateway?.url ?? '';
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const messages = [{ role: 'user' as const, content: SECRET_MARKERS.prompt }];

    const json = await client.chat.completions
      .create({ model: MODELS.separated, messages, max_tokens: 8 })
      .withResponse();
    expect(json.response.headers.get('x-teeml-verification')).toBe('verified');
    const stream = await client.chat.completions.create({
      model: MODELS.separated,
      messages,
      max_tokens: 8,
      stream: true,
    });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
    expect(streamed).toMatch(/demo/);

    expect(gateway?.counters).toMatchObject({ verified: 2, failed: 0 });
    const recent = gateway?.receipts.recent ?? [];
    expect(recent.map((r) => r.stream)).toEqual([true, false]);
    for (const r of recent) {
      expect(r.request_hash_compared).toBe(false);
      expect(r.signing_address).toBe(world.sidecarAddress);
      expect(r.checks.map((c) => `${c.id} ${c.status}`)).toContain('link.after-answer pass');
    }
    const health = (await (await fetch(`${url}/health`)).json()) as {
      provider: Record<string, unknown>;
      link: Record<string, unknown>;
    };
    const user = new Wallet(USER_KEY).address;
    expect(health.provider).toMatchObject({ mode: '0g', provider: world.separated.providerAddress });
    expect(health.link).toMatchObject({ wallet: user, answers: 2, sdk_rejected: 0 });

    // What the broker charged equals what the link counted; settling moves the sub-account by it.
    const fee = world.separated.unsettled(user);
    expect(fee).toBeGreaterThan(0n);
    expect(health.link['spend_0g']).toBe(formatEther(fee));
    const account = async () =>
      (
        (await world.chain.inference.getFunction('getAccount')(user, world.separated.providerAddress)) as {
          balance: bigint;
        }
      ).balance;
    const before = await account();
    expect(await world.separated.settle()).toEqual([0]);
    expect(before - (await account())).toBe(fee);

    expect(await stop()).toBe(0);
    const verified = sink();
    expect(
      await receiptsCommand(['verify', receipts, '--allow-simulated'], verified.stream, sink().stream),
    ).toBe(0);
    // The broker re-serialized the request: the verdict says what that leaves unproven.
    expect(verified.text()).toMatch(
      /^not checked: request hash not compared \(0G broker re-serializes requests\)$/m,
    );
    expect(readFileSync(receipts, 'utf8')).not.toContain(SECRET_MARKERS.prompt);
  });

  it('a provider whose broker signs attests with a static quote: refused (report.nonce) without acceptBrokerQuote', async () => {
    const { gateway, stop } = await run(zgArgs(world.signing.providerAddress), ENV());
    expect(gateway?.attestor.current?.failedCheck).toBe('report.nonce');
    const res = await fetch(`${gateway?.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODELS.signing, messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(text).toContain('report.nonce');
    expect(gateway?.counters).toMatchObject({ verified: 0 });
    expect(await stop()).toBe(0);
  });

  it('with --accept-broker-quote: JSON and streaming chats through a broker-signed provider, verified and receipted as not fresh; a quote binding another address is refused', async () => {
    const receipts = join(dir, 'broker-receipts.jsonl');
    const signer = world.signing.teeAddress;
    const { gateway, out, stop } = await run(
      [...zgArgs(world.signing.providerAddress), '--accept-broker-quote', '--receipts', receipts],
      ENV(),
    );
    expect(gateway?.attestor.current).toMatchObject({ ok: true, fresh: false });
    expect(gateway?.attestor.current?.signer?.address).toBe(signer);
    const checks = gateway?.attestor.current?.checks ?? [];
    const statusOf = (id: string) => checks.find((c) => c.id === id)?.status;
    expect(statusOf('tdx.report-data.broker-address')).toBe('pass');
    expect(statusOf('signing.expected-address')).toBe('pass');
    expect(statusOf('report.nonce')).toBe('skip');
    expect(out.text()).toContain(`attested, signing address ${signer}`);
    const url = gateway?.url ?? '';
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const messages = [{ role: 'user' as const, content: SECRET_MARKERS.prompt }];

    const json = await client.chat.completions
      .create({ model: MODELS.signing, messages, max_tokens: 8 })
      .withResponse();
    expect(json.response.headers.get('x-teeml-verification')).toBe('verified');
    expect(json.data.id).toMatch(/^chatcmpl-[0-9a-f-]{36}$/);
    const stream = await client.chat.completions.create({
      model: MODELS.signing,
      messages,
      max_tokens: 8,
      stream: true,
    });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
    expect(streamed).toMatch(/demo/);
    expect(gateway?.counters).toMatchObject({ verified: 2, failed: 0 });
    for (const r of gateway?.receipts.recent ?? []) {
      expect(r.signing_address).toBe(signer);
      // The SDK's processResponse accepted each answer too (the broker's signature, ZG-Res-Key id).
      expect(r.checks.map((c) => `${c.id} ${c.status}`)).toContain('link.after-answer pass');
      expect(r.request_hash_compared).toBe(false);
      expect(r.attestation).toMatchObject({
        fresh: false,
        not_fresh: 'attested by a quote made at broker start, not for our nonce',
      });
    }
    const page = await (await fetch(`${url}/`)).text();
    expect(page).toContain('id="not-fresh"');
    expect(page).toContain('attested by a quote made at broker start, not for our nonce');

    // The broker now serves a quote over another address while its JSON still names the chain's
    // signer: the next attestation fails on the binding, and requests are refused with its id.
    world.signing.setQuote(await brokerQuote(signer, Wallet.createRandom().address));
    const again = await gateway?.attestor.attest();
    expect(again?.failedCheck).toBe('tdx.report-data.broker-address');
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODELS.signing, messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('tdx.report-data.broker-address');
    world.signing.setQuote(await brokerQuote(signer));
    expect(await stop()).toBe(0);

    // Offline, the receipts file re-checks: the not-fresh attestation line by its broker binding.
    const verified = sink();
    expect(
      await receiptsCommand(['verify', receipts, '--allow-simulated'], verified.stream, sink().stream),
    ).toBe(0);
    const lines = readFileSync(receipts, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ type: 'attestation', fresh: false, signing_address: signer });
    // Marking the line fresh does not get it past the nonce check.
    const tampered = join(dir, 'broker-receipts-tampered.jsonl');
    writeFileSync(
      tampered,
      lines.map((l) => JSON.stringify(l['type'] === 'attestation' ? { ...l, fresh: true } : l)).join('\n'),
    );
    const failed = sink();
    expect(
      await receiptsCommand(['verify', tampered, '--allow-simulated'], failed.stream, sink().stream),
    ).not.toBe(0);
    expect(failed.text()).toContain('report.nonce');
  });

  it('usage errors exit 2, naming the option; a provider that cannot be reached exits 1', async () => {
    for (const [argv, env, message] of [
      [[...zgArgs(MODELS.separated), '--provider', 'http://127.0.0.1:1'], ENV(), /two modes/],
      [[...zgArgs(MODELS.separated), '--zg-create-ledger', '1'], ENV(), /--zg-create-ledger/],
      [zgArgs(MODELS.separated), { TEEML_GATEWAY_ALLOW_SIMULATED: 'true' }, /ZG_PRIVATE_KEY/],
      [['--zg-provider', MODELS.separated], ENV(), /--zg-rpc is required/],
    ] as const) {
      const { exit, err } = await run([...argv], { ...env });
      expect(await exit).toBe(2);
      expect(err.text()).toMatch(message);
      expect(err.text()).not.toContain(SECRET_MARKERS.zgWalletKey);
    }
    const down = await run(['--zg-rpc', 'http://127.0.0.1:1', '--zg-provider', MODELS.separated], ENV());
    expect(await down.exit).toBe(1);
    expect(down.err.text()).toContain('cannot start');
    expect(logs.join('')).not.toContain(SECRET_MARKERS.zgWalletKey);
  });
});
