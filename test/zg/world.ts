import { createHash } from 'node:crypto';
import { parseEther, Wallet } from 'ethers';
import { buildNvidiaPayload, SimulatedGpuEvidenceProvider } from '../../src/gpu/index.js';
import { SimulatedQuoteProvider } from '../../src/tdx/index.js';
import { json, rawRequest, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { type BrokerDouble, startBrokerDouble } from './broker-double.js';
import { DEV_KEYS, type LocalChain, startLocalChain } from './chain.js';

/**
 * One offline 0G network for a test file: the local chain, a real simulated sidecar, and three
 * registered TeeML providers, each a broker double:
 * - `separated`: forwards to the sidecar; the chain names the sidecar's key as TargetTeeAddress;
 * - `signing`: signs the client copy in its "CVM" and serves a dstack-style /v1/quote;
 * - `wrongSigner`: forwards to the sidecar, but the chain names another TargetTeeAddress.
 * The wallets in `keys` are funded with 1000 0G each; none has a ledger yet.
 */

export const PRICES = { inputPrice: 1_000_000_000_000n, outputPrice: 3_000_000_000_000n } as const;

export const MODELS = {
  separated: 'demo/separated-model',
  signing: 'demo/broker-model',
  wrongSigner: 'demo/wrong-signer-model',
} as const;

export interface ZgWorld {
  chain: LocalChain;
  sidecar: TestSidecar;
  sidecarAddress: string;
  separated: BrokerDouble;
  signing: BrokerDouble;
  wrongSigner: BrokerDouble;
  close(): Promise<void>;
}

/**
 * What a 0G provider broker serves at /v1/quote (dstack GetQuoteResponse + nvidia_payload),
 * simulated. `quoteBinds`: the text the quote's report_data really holds (default: the address),
 * for a lying broker whose JSON report_data names the chain's signer over a quote for another.
 */
export const brokerQuote = async (
  address: string,
  quoteBinds: string = address,
): Promise<Record<string, unknown>> => {
  const bytesOf = (text: string) => {
    const data = new Uint8Array(64);
    data.set(new TextEncoder().encode(text));
    return data;
  };
  const reportData = bytesOf(address);
  const quote = await new SimulatedQuoteProvider().getQuote(bytesOf(quoteBinds));
  const nonce = new Uint8Array(createHash('sha256').update(address).digest());
  const gpus = await new SimulatedGpuEvidenceProvider().collect(nonce);
  return {
    quote: Buffer.from(quote.quote).toString('hex'),
    event_log: JSON.stringify(quote.eventLog),
    report_data: Buffer.from(reportData).toString('base64'),
    vm_config: '{}',
    nvidia_payload: JSON.parse(buildNvidiaPayload(nonce, gpus.gpus)) as unknown,
  };
};

/** `sidecarEnv`: the sidecar's configuration on top of the test defaults (e.g. SIGNED_TEXT_FORMAT). */
export const startZgWorld = async (
  fundedKeys: readonly string[],
  sidecarEnv: Record<string, string> = {},
): Promise<ZgWorld> => {
  const [chain, sidecar] = await Promise.all([startLocalChain(), startTestSidecar(sidecarEnv)]);
  const sidecarAddress = json<{ signing_address: string }>(
    await rawRequest(`${sidecar.url}/v1/attestation/report`),
  ).signing_address;
  const teeA = Wallet.createRandom();
  const teeB = Wallet.createRandom();
  const teeC = Wallet.createRandom();
  const common = { rpc: chain.rpc, chainId: chain.chainId, inferenceAddress: chain.inferenceAddress };
  const [separated, signing, wrongSigner] = await Promise.all([
    startBrokerDouble({
      ...common,
      providerKey: DEV_KEYS.providerA,
      teeKey: teeA.privateKey,
      layout: 'separated',
      targetUrl: `${sidecar.url}/v1`,
      model: MODELS.separated,
    }),
    startBrokerDouble({
      ...common,
      providerKey: DEV_KEYS.providerB,
      teeKey: teeB.privateKey,
      layout: 'signing',
      targetUrl: `${sidecar.url}/v1`,
      model: MODELS.signing,
      quote: await brokerQuote(teeB.address),
    }),
    startBrokerDouble({
      ...common,
      providerKey: DEV_KEYS.providerC,
      teeKey: teeC.privateKey,
      layout: 'separated',
      targetUrl: `${sidecar.url}/v1`,
      model: MODELS.wrongSigner,
    }),
  ]);
  await chain.registerService({
    providerKey: DEV_KEYS.providerA,
    url: separated.url,
    model: MODELS.separated,
    teeSignerAddress: separated.teeAddress,
    additionalInfo: {
      TargetSeparated: true,
      TargetTeeAddress: sidecarAddress,
      ProviderType: 'decentralized',
    },
    ...PRICES,
  });
  await chain.registerService({
    providerKey: DEV_KEYS.providerB,
    url: signing.url,
    model: MODELS.signing,
    teeSignerAddress: signing.teeAddress,
    additionalInfo: { TargetSeparated: false },
    ...PRICES,
  });
  // The chain names a TEE key that is not the one behind the broker.
  await chain.registerService({
    providerKey: DEV_KEYS.providerC,
    url: wrongSigner.url,
    model: MODELS.wrongSigner,
    teeSignerAddress: wrongSigner.teeAddress,
    additionalInfo: { TargetSeparated: true, TargetTeeAddress: Wallet.createRandom().address },
    ...PRICES,
  });
  for (const key of fundedKeys) await chain.fund(new Wallet(key).address, parseEther('1000'));
  return {
    chain,
    sidecar,
    sidecarAddress,
    separated,
    signing,
    wrongSigner,
    async close() {
      await Promise.all([separated.close(), signing.close(), wrongSigner.close(), sidecar.close()]);
      await chain.close();
    },
  };
};

/** The wallet the 0G tests pay with (its key is a SECRET_MARKERS entry: it must never be logged). */
export const USER_KEY = `0x${SECRET_MARKERS.zgWalletKey}`;
