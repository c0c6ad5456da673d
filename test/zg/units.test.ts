import { describe, expect, it } from 'vitest';
import { SidecarError } from '../../src/errors/index.js';
import {
  adaptBrokerQuote,
  BROKER_QUOTE_SCHEME,
  isZgMode,
  readWalletKey,
  signerOfService,
  usageOf,
  zgLinkOptionsFromFlags,
} from '../../src/zg/index.js';
import { rejection } from '../rejection.js';
import { SECRET_MARKERS } from '../secrets.js';

const KEY = SECRET_MARKERS.zgWalletKey;

describe('readWalletKey', () => {
  it('reads ZG_PRIVATE_KEY, with or without 0x, and normalizes it', async () => {
    expect(await readWalletKey({ env: { ZG_PRIVATE_KEY: KEY.toUpperCase() } })).toBe(`0x${KEY}`);
    expect(await readWalletKey({ env: { ZG_PRIVATE_KEY: `0x${KEY}\n` } })).toBe(`0x${KEY}`);
  });

  it('prefers --zg-private-key-file, read through the injected reader', async () => {
    const seen: string[] = [];
    const key = await readWalletKey({
      env: { ZG_PRIVATE_KEY: 'not used' },
      keyFile: '/run/secrets/zg',
      readFile: async (path) => {
        seen.push(path);
        return `${KEY}\n`;
      },
    });
    expect(key).toBe(`0x${KEY}`);
    expect(seen).toEqual(['/run/secrets/zg']);
  });

  it('refuses a missing, malformed or out-of-range key without echoing it', async () => {
    const missing = await rejection(readWalletKey({ env: {} }));
    expect(missing).toMatchObject({ status: 400, code: 'missing_wallet_key' });
    for (const bad of [KEY.slice(1), `${KEY}00`, `zz${KEY.slice(2)}`, '0'.repeat(64), 'f'.repeat(64)]) {
      const error = await rejection(readWalletKey({ env: { ZG_PRIVATE_KEY: bad } }));
      expect(error).toMatchObject({ code: 'invalid_wallet_key', param: 'ZG_PRIVATE_KEY' });
      expect(error.message).not.toContain(bad.slice(4, 20));
    }
    const unreadable = await rejection(
      readWalletKey({
        env: {},
        keyFile: '/nope',
        readFile: () => Promise.reject(new Error(`ENOENT ${KEY}`)),
      }),
    );
    expect(unreadable).toMatchObject({ code: 'invalid_wallet_key', param: '--zg-private-key-file' });
    expect(JSON.stringify(unreadable.toBody())).not.toContain(KEY);
  });
});

describe('signerOfService', () => {
  const tee = '0x1111111111111111111111111111111111111111';
  const target = '0x2222222222222222222222222222222222222222';

  it('uses TargetTeeAddress for a separated decentralized provider, the broker signer otherwise', () => {
    const info = (v: unknown) => JSON.stringify(v);
    expect(
      signerOfService({
        teeSignerAddress: tee,
        additionalInfo: info({ TargetSeparated: true, TargetTeeAddress: target }),
      }),
    ).toEqual({ address: target, layout: 'separated' });
    expect(
      signerOfService({
        teeSignerAddress: tee,
        additionalInfo: info({
          TargetSeparated: true,
          TargetTeeAddress: target,
          ProviderType: 'centralized',
        }),
      }),
    ).toEqual({ address: tee, layout: 'broker-signed' });
    expect(signerOfService({ teeSignerAddress: tee, additionalInfo: info({}) })).toEqual({
      address: tee,
      layout: 'broker-signed',
    });
  });

  it('refuses unreadable additionalInfo and a separated service without a valid target', () => {
    for (const additionalInfo of ['', 'not json', 'null', JSON.stringify({ TargetSeparated: true })]) {
      expect(() => signerOfService({ teeSignerAddress: tee, additionalInfo })).toThrow(SidecarError);
    }
  });
});

describe('usageOf', () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  it('reads the body usage, or the last usage chunk of a stream', () => {
    expect(usageOf(enc('{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":4}}'), false)).toEqual({
      prompt_tokens: 3,
      completion_tokens: 4,
    });
    const sse =
      'data: {"id":"a","choices":[{"delta":{"content":"hi"}}]}\n\n' +
      'data: {"id":"a","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n' +
      'data: [DONE]\n\n';
    expect(usageOf(enc(sse), true)).toEqual({ prompt_tokens: 5, completion_tokens: 2 });
    expect(usageOf(enc('not json'), false)).toBeUndefined();
    expect(usageOf(enc('data: {"id":"a"}\n\ndata: [DONE]\n\n'), true)).toBeUndefined();
  });
});

describe('adaptBrokerQuote', () => {
  const address = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';
  const reportData = Buffer.alloc(64);
  reportData.write(address, 'ascii');
  const payload = { nonce: 'ab'.repeat(32), evidence_list: [], arch: 'HOPPER' };

  it('reads the ASCII signer from report_data, in base64 (Go []byte) or hex', () => {
    for (const encode of [(b: Buffer) => b.toString('base64'), (b: Buffer) => b.toString('hex')]) {
      const report = adaptBrokerQuote({
        quote: encode(Buffer.from([4, 0, 2, 0])),
        report_data: encode(reportData),
        event_log: '[{"event":"compose-hash"}]',
        vm_config: '{}',
        nvidia_payload: payload,
      });
      expect(report).toMatchObject({
        signing_address: address,
        signing_algo: 'ecdsa',
        request_nonce: 'ab'.repeat(32),
        intel_quote: '04000200',
        event_log: [{ event: 'compose-hash' }],
        report_data_scheme: BROKER_QUOTE_SCHEME,
        nvidia_payload: JSON.stringify(payload),
      });
    }
  });

  it('refuses a report_data that holds no address, and fields that are not bytes', () => {
    const bad = [
      { quote: '0400', report_data: Buffer.alloc(64).toString('base64') },
      { quote: '0400', report_data: Buffer.from('0x1234', 'ascii').toString('base64') },
      { quote: '', report_data: reportData.toString('base64') },
      { quote: 'not bytes!', report_data: reportData.toString('base64') },
      { quote: '0400', report_data: reportData.toString('base64'), event_log: '{not json' },
      [],
      null,
    ];
    for (const value of bad) {
      expect(() => adaptBrokerQuote(value)).toThrow(SidecarError);
    }
  });
});

describe('zgLinkOptionsFromFlags', () => {
  const env = { ZG_PRIVATE_KEY: KEY };
  const address = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';

  it('turns the --zg-* flags and ZG_PRIVATE_KEY into link options', async () => {
    expect(isZgMode({})).toBe(false);
    expect(isZgMode({ rpc: 'http://127.0.0.1:8545' })).toBe(true);
    expect(
      await zgLinkOptionsFromFlags(
        { rpc: 'https://evmrpc.example/key', provider: 'qwen/qwen-2.5-7b', createLedger: '3.5' },
        env,
      ),
    ).toEqual({
      rpcUrl: 'https://evmrpc.example/key',
      provider: 'qwen/qwen-2.5-7b',
      privateKey: `0x${KEY}`,
      createLedger: 3.5,
    });
    expect(
      await zgLinkOptionsFromFlags(
        {
          rpc: 'http://127.0.0.1:8545',
          provider: address,
          ledgerAddress: address,
          inferenceAddress: address,
        },
        env,
      ),
    ).toMatchObject({ provider: address, ledgerAddress: address, inferenceAddress: address });
  });

  it('names the flag that is wrong', async () => {
    const cases: [Parameters<typeof zgLinkOptionsFromFlags>[0], string][] = [
      [{ provider: 'm' }, '--zg-rpc'],
      [{ rpc: 'ftp://x', provider: 'm' }, '--zg-rpc'],
      [{ rpc: 'http://127.0.0.1:1' }, '--zg-provider'],
      [{ rpc: 'http://127.0.0.1:1', provider: '0x1234' }, '--zg-provider'],
      [{ rpc: 'http://127.0.0.1:1', provider: 'm', ledgerAddress: 'ledger' }, '--zg-ledger-address'],
      [{ rpc: 'http://127.0.0.1:1', provider: 'm', inferenceAddress: '0x12' }, '--zg-inference-address'],
      [{ rpc: 'http://127.0.0.1:1', provider: 'm', createLedger: '2' }, '--zg-create-ledger'],
      [{ rpc: 'http://127.0.0.1:1', provider: 'm', createLedger: 'ten' }, '--zg-create-ledger'],
    ];
    for (const [flags, flag] of cases) {
      const error = await rejection(zgLinkOptionsFromFlags(flags, env));
      expect(error).toMatchObject({ status: 400, code: 'invalid_zg_option', param: flag });
    }
    const noKey = await rejection(zgLinkOptionsFromFlags({ rpc: 'http://127.0.0.1:1', provider: 'm' }, {}));
    expect(noKey).toMatchObject({ code: 'missing_wallet_key' });
  });
});
