import { toHex } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';
import type { ProviderLink } from '../gateway/index.js';
import { lazyRequire } from '../lazy/index.js';
import { adaptBrokerQuote } from './broker-quote.js';

type Sdk = typeof import('@0gfoundation/0g-compute-ts-sdk');
// The CommonJS typings of ethers, as the SDK's own typings reference them.
type Ethers = typeof import('ethers', { with: { 'resolution-mode': 'require' }});
type Broker = Awaited<ReturnType<Sdk['createZGComputeNetworkBroker']>>;

// Both load on first use: a gateway in direct mode (and the sidecar) never pays for the SDK. They
// are required as CommonJS on purpose: the SDK requires ethers that way, and one ethers instance
// keeps its `instanceof Wallet` checks and its Contract runners consistent with ours.
// They are optional peer dependencies (package.json): the TDX image prunes to production
// dependencies and would otherwise carry ~180 MB it never runs (the SDK ships a storage client
// binary and a web UI). A source checkout (`npm ci`) has them; an install without them says so.
const requireOptional = <T>(specifier: string): (() => T) => {
  const load = lazyRequire<T>(specifier);
  return () => {
    try {
      return load();
    } catch (error) {
      if ((error as { code?: unknown } | null)?.code !== 'MODULE_NOT_FOUND') throw error;
      throw new SidecarError(
        `0G mode needs ${specifier}: install the optional peer dependencies @0gfoundation/0g-compute-ts-sdk and ethers at the versions package.json names`,
        { status: 500, code: 'zg_sdk_missing', cause: error },
      );
    }
  };
};
const loadSdk = requireOptional<Sdk>('@0gfoundation/0g-compute-ts-sdk');
const loadEthers = requireOptional<Ethers>('ethers');

/**
 * The read-only view of InferenceServing this link needs for itself (ABI of the SDK 0.9.0's
 * InferenceServing, trimmed): the chain, not the provider, says who must sign answers.
 */
const SERVING_ABI = [
  'function getService(address provider) view returns ((address provider, string serviceType, string url, uint256 inputPrice, uint256 outputPrice, uint256 updatedAt, string model, string verifiability, string additionalInfo, address teeSignerAddress, bool teeSignerAcknowledged) service)',
  'function getAccount(address user, address provider) view returns ((address user, address provider, uint256 nonce, uint256 balance, uint256 pendingRefund, (uint256 index, uint256 amount, uint256 createdAt, bool processed)[] refunds, string additionalInfo, bool acknowledged, uint256 validRefundsLength, uint256 generation, uint256 revokedBitmap))',
];

/** 1 0G in neuron: the locked balance a provider broker keeps in reserve (0g-serving-broker const.go). */
const MIN_LOCKED = 10n ** 18n;
/** The least a ledger can be created with (LedgerManager.MIN_ACCOUNT_BALANCE). */
export const MIN_LEDGER_0G = 3;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

export interface ZgLinkOptions {
  /** `--zg-rpc`. */
  rpcUrl: string;
  /** `--zg-provider`: a provider address, or a model name served by an acknowledged TeeML provider. */
  provider: string;
  /** From readWalletKey (ZG_PRIVATE_KEY or --zg-private-key-file), never argv. */
  privateKey: string;
  /** `--zg-ledger-address` / `--zg-inference-address`; default: the SDK's per-chain addresses. */
  ledgerAddress?: string;
  inferenceAddress?: string;
  /** `--zg-create-ledger <amount>` in 0G: create the ledger with this much when there is none. */
  createLedger?: number;
  /** Gas price in neuron for the SDK's transactions; without it the SDK asks the node (and pauses 1 s). */
  gasPrice?: number;
  /** The SDK's background auto-funding of the provider sub-account (so requests never wait for a transaction). */
  autoFunding?: { intervalMs?: number; bufferMultiplier?: number };
  fetch?: typeof globalThis.fetch;
  now?: () => number;
  /** How long chain reads for funds and the expected signer are reused. */
  chainCacheMs?: number;
  /** Deadline for one attestation fetch. */
  attestationTimeoutMs?: number;
}

interface ServiceView {
  provider: string;
  url: string;
  model: string;
  verifiability: string;
  inputPrice: bigint;
  outputPrice: bigint;
  additionalInfo: string;
  teeSignerAddress: string;
  teeSignerAcknowledged: boolean;
}

/** 0G's two provider layouts (0g-serving-broker ctrl/chatbot.go decides the same way). */
export type ZgLayout = 'separated' | 'broker-signed';

const serviceOf = (raw: unknown): ServiceView => {
  const s = raw as Record<string, unknown>;
  return {
    provider: String(s['provider']),
    url: String(s['url']).replace(/\/+$/, ''),
    model: String(s['model']),
    verifiability: String(s['verifiability']),
    inputPrice: BigInt(s['inputPrice'] as bigint),
    outputPrice: BigInt(s['outputPrice'] as bigint),
    additionalInfo: String(s['additionalInfo']),
    teeSignerAddress: String(s['teeSignerAddress']),
    teeSignerAcknowledged: s['teeSignerAcknowledged'] === true,
  };
};

const isTeeMl = (s: ServiceView): boolean => s.verifiability.toLowerCase() === 'teeml';

/**
 * Who must sign answers, from the service's on-chain record, as the 0G SDK's processResponse
 * decides it: a decentralized provider whose model runs in its own TEE (`TargetSeparated`) names
 * that TEE's key in `TargetTeeAddress`; otherwise the broker's TEE signs with `teeSignerAddress`.
 */
export const signerOfService = (
  service: Pick<ServiceView, 'additionalInfo' | 'teeSignerAddress'>,
): { address: string; layout: ZgLayout } => {
  let info: Record<string, unknown>;
  try {
    info = JSON.parse(service.additionalInfo) as Record<string, unknown>;
    if (typeof info !== 'object' || info === null) throw new TypeError('not an object');
  } catch {
    throw new SidecarError('the 0G service record has no readable additionalInfo; its signer is unknown', {
      status: 502,
      code: 'zg_service_invalid',
    });
  }
  const centralized = info['ProviderType'] === 'centralized';
  const target = info['TargetTeeAddress'];
  if (info['TargetSeparated'] === true && !centralized) {
    if (typeof target !== 'string' || !ADDRESS.test(target)) {
      throw new SidecarError('the 0G service is separated but names no valid TargetTeeAddress', {
        status: 502,
        code: 'zg_service_invalid',
      });
    }
    return { address: target, layout: 'separated' };
  }
  return { address: service.teeSignerAddress, layout: 'broker-signed' };
};

/** The usage object of an OpenAI answer: the body's `usage`, or (streams) the last chunk carrying one. */
export const usageOf = (body: Uint8Array, streamed: boolean): Record<string, unknown> | undefined => {
  const text = new TextDecoder().decode(body);
  const pick = (json: string): Record<string, unknown> | undefined => {
    try {
      const value = JSON.parse(json) as { usage?: unknown };
      return typeof value.usage === 'object' && value.usage !== null
        ? (value.usage as Record<string, unknown>)
        : undefined;
    } catch {
      return undefined;
    }
  };
  if (!streamed) return pick(text);
  let found: Record<string, unknown> | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith('data:')) continue;
    const data = line.slice(5).trim();
    if (data === '[DONE]') break;
    found = pick(data) ?? found;
  }
  return found;
};

const tokens = (value: unknown): bigint =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? BigInt(value) : 0n;

/** Only the origin of an RPC URL is shown: providers put API keys in its path or query. */
const originOf = (url: string): string => {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid url)';
  }
};

const noLedger = (provider: string): SidecarError =>
  new SidecarError(
    `this 0G wallet has no ledger to pay provider ${provider} from: restart the gateway with --zg-create-ledger <amount> (at least ${MIN_LEDGER_0G} 0G)`,
    { status: 402, code: 'insufficient_balance', type: 'invalid_request_error' },
  );

const ledgerDry = (provider: string): SidecarError =>
  new SidecarError(
    `the 0G ledger has run dry: provider ${provider}'s sub-account is below its 1 0G reserve and the ledger cannot refill it; deposit more (0g-compute-cli deposit --amount <amount>), or create a ledger with --zg-create-ledger <amount> if it was deleted`,
    { status: 402, code: 'insufficient_balance', type: 'invalid_request_error' },
  );

/** Selector of LedgerManager's `LedgerNotExists(address)` revert: bytes4(keccak256(signature)). */
const LEDGER_NOT_EXISTS = '0x7d2d536b';

/** The SDK rethrows the contract's revert with its `data` kept; only that revert means "no ledger". */
const isLedgerMissing = (error: unknown): boolean => {
  const data = (error as { data?: unknown } | null)?.data;
  return typeof data === 'string' && data.toLowerCase().startsWith(LEDGER_NOT_EXISTS);
};

/**
 * The gateway's 0G mode (issue 18): reaches one 0G Compute provider through the official SDK for
 * everything on chain and for request headers, and gives the gateway what it needs to verify each
 * answer more strictly than the SDK does (the chain's signer for expectedSigner, the attestation
 * the provider serves). It never trusts `verifyService().success` (the SDK sets it true even when
 * its own checks print FAILED).
 */
export class ZgLink implements ProviderLink {
  /**
   * False for both 0G layouts: a provider broker re-serializes every chatbot body before it
   * forwards it (EnforceConfiguredModel re-marshals whenever TargetSeparated, EnsureStreamOptions
   * adds stream_options), and a signing broker signs its own forwarded copy. Receipts say so.
   */
  readonly requestHashComparable = false;

  readonly #broker: Broker;
  readonly #ethers: Ethers;
  readonly #rpc: InstanceType<Ethers['JsonRpcProvider']>;
  readonly #serving: InstanceType<Ethers['Contract']>;
  readonly #wallet: string;
  readonly #options: ZgLinkOptions;
  readonly #fetch: typeof globalThis.fetch;
  readonly #now: () => number;
  readonly #chainId: bigint;
  readonly #addresses: { ledger: string; inference: string };
  #service: ServiceView;
  #signer: { address: string; layout: ZgLayout; at: number };
  #funds: { locked: bigint; available: bigint | undefined; at: number } | undefined;
  #health: { view: Record<string, unknown>; at: number } | undefined;
  #provisioned: Promise<void> | undefined;
  #ledgerMissing = false;
  #answers = 0;
  #sdkRejected = 0;
  #spend = 0n;
  #closed = false;

  private constructor(init: {
    broker: Broker;
    ethers: Ethers;
    rpc: InstanceType<Ethers['JsonRpcProvider']>;
    serving: InstanceType<Ethers['Contract']>;
    wallet: string;
    options: ZgLinkOptions;
    chainId: bigint;
    addresses: { ledger: string; inference: string };
    service: ServiceView;
  }) {
    this.#broker = init.broker;
    this.#ethers = init.ethers;
    this.#rpc = init.rpc;
    this.#serving = init.serving;
    this.#wallet = init.wallet;
    this.#options = init.options;
    this.#fetch = init.options.fetch ?? globalThis.fetch;
    this.#now = init.options.now ?? Date.now;
    this.#chainId = init.chainId;
    this.#addresses = init.addresses;
    this.#service = init.service;
    this.#signer = { ...signerOfService(init.service), at: this.#now() };
  }

  /**
   * Connects to the chain, finds the service, creates the ledger when asked to, and (when a ledger
   * exists) acknowledges the provider's signer and starts auto-funding. A missing ledger does not
   * fail start-up: requests get a 402 that says how to create one, and /health shows it.
   */
  static async create(options: ZgLinkOptions): Promise<ZgLink> {
    const ethers = loadEthers();
    const fetchFn = options.fetch ?? globalThis.fetch;
    // Ask for the chain id ourselves first: ethers retries an unreachable node forever and logs.
    const chainId = await rpcChainId(fetchFn, options.rpcUrl);
    const rpc = new ethers.JsonRpcProvider(options.rpcUrl, ethers.Network.from(chainId), {
      staticNetwork: true,
      // ethers reuses identical answers for 250 ms; a nonce read right after a mined transaction
      // must not get the previous one.
      cacheTimeout: -1,
    });
    const wallet = new ethers.Wallet(options.privateKey, rpc);
    const sdk = loadSdk();
    const network = sdk.getNetworkType(chainId);
    const defaults =
      network === 'unknown'
        ? sdk.CONTRACT_ADDRESSES.testnet
        : network === 'testnet' && sdk.isDevMode()
          ? sdk.CONTRACT_ADDRESSES.testnetDev
          : sdk.CONTRACT_ADDRESSES[network];
    const addresses = {
      ledger: options.ledgerAddress ?? defaults.ledger,
      inference: options.inferenceAddress ?? defaults.inference,
    };
    let broker: Broker;
    try {
      broker = await sdk.createZGComputeNetworkBroker(
        wallet,
        addresses.ledger,
        addresses.inference,
        undefined,
        options.gasPrice,
      );
    } catch (error) {
      rpc.destroy();
      throw new SidecarError(
        `the 0G serving contracts were not found on chain ${chainId} (ledger ${addresses.ledger}, inference ${addresses.inference}): pass --zg-ledger-address and --zg-inference-address`,
        { status: 502, code: 'zg_contracts_unavailable', cause: error },
      );
    }
    const serving = new ethers.Contract(addresses.inference, SERVING_ABI, rpc);
    try {
      const service = await resolveService(broker, serving, options.provider);
      const link = new ZgLink({
        broker,
        ethers,
        rpc,
        serving,
        wallet: wallet.address,
        options,
        chainId,
        addresses,
        service,
      });
      await link.#prepareLedger();
      return link;
    } catch (error) {
      broker.inference.stopAutoFunding();
      rpc.destroy();
      throw error;
    }
  }

  get providerAddress(): string {
    return this.#service.provider;
  }

  get layout(): ZgLayout {
    return this.#signer.layout;
  }

  async #prepareLedger(): Promise<void> {
    try {
      await this.#broker.ledger.getLedger();
      this.#ledgerMissing = false;
    } catch (error) {
      if (!isLedgerMissing(error)) throw error;
      if (this.#options.createLedger === undefined) {
        this.#ledgerMissing = true;
        return;
      }
      if (!(this.#options.createLedger >= MIN_LEDGER_0G)) {
        throw new SidecarError(`--zg-create-ledger expected at least ${MIN_LEDGER_0G} 0G`, {
          status: 400,
          code: 'invalid_ledger_amount',
          param: '--zg-create-ledger',
        });
      }
      await this.#broker.ledger.addLedger(this.#options.createLedger, this.#options.gasPrice);
      this.#ledgerMissing = false;
    }
    await this.#provision();
  }

  /** First use of a provider: acknowledge its signer (creates the sub-account), then keep it funded. */
  #provision(): Promise<void> {
    this.#provisioned ??= (async () => {
      const provider = this.#service.provider;
      // acknowledged() throws while the sub-account does not exist; acknowledging creates it.
      const acknowledged = await this.#broker.inference.acknowledged(provider).catch(() => false);
      if (!acknowledged) {
        await this.#broker.inference.acknowledgeProviderSigner(provider, this.#options.gasPrice);
      }
      const auto = this.#options.autoFunding ?? {};
      await this.#broker.inference.startAutoFunding(
        provider,
        {
          ...(auto.intervalMs === undefined ? {} : { interval: auto.intervalMs }),
          ...(auto.bufferMultiplier === undefined ? {} : { bufferMultiplier: auto.bufferMultiplier }),
        },
        this.#options.gasPrice,
      );
    })();
    this.#provisioned.catch(() => {
      this.#provisioned = undefined;
    });
    return this.#provisioned;
  }

  async describe(): Promise<Record<string, unknown>> {
    return {
      mode: '0g',
      chain_id: this.#chainId.toString(),
      rpc: originOf(this.#options.rpcUrl),
      provider: this.#service.provider,
      model: this.#service.model,
      service_url: this.#service.url,
      layout: this.#signer.layout,
      ledger_contract: this.#addresses.ledger,
      inference_contract: this.#addresses.inference,
    };
  }

  endpoint(openAiPath: string): URL {
    return new URL(`${this.#service.url}/v1/proxy${openAiPath}`);
  }

  async requestHeaders(input: {
    openAiPath: string;
    body: Uint8Array | undefined;
  }): Promise<Record<string, string>> {
    // The broker serves signature records without authentication (the SDK fetches them bare), and a
    // record must stay fetchable even when the ledger ran dry after the answer.
    if (input.openAiPath === '/signature') return {};
    if (this.#ledgerMissing) {
      await this.#prepareLedger();
      if (this.#ledgerMissing) throw noLedger(this.#service.provider);
    }
    await this.#provision();
    const funds = await this.#readFunds();
    if (funds.locked < MIN_LOCKED && (funds.available === undefined || funds.available < MIN_LOCKED)) {
      throw ledgerDry(this.#service.provider);
    }
    // The SDK's ephemeral session token (24 h, reused), not a per-request charge; with auto-funding
    // running it does no transaction on this path.
    const headers = await this.#broker.inference.getRequestHeaders(this.#service.provider);
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(headers)) if (typeof value === 'string') out[key] = value;
    return out;
  }

  async #readFunds(): Promise<{ locked: bigint; available: bigint | undefined }> {
    const ttl = this.#options.chainCacheMs ?? 10_000;
    if (this.#funds !== undefined && this.#now() - this.#funds.at < ttl) return this.#funds;
    let locked = 0n;
    try {
      const account = (await this.#serving.getFunction('getAccount')(
        this.#wallet,
        this.#service.provider,
      )) as { balance: bigint; pendingRefund: bigint };
      locked = account.balance - account.pendingRefund;
    } catch {
      // No sub-account yet: auto-funding creates it.
    }
    let available: bigint | undefined;
    try {
      const ledger = (await this.#broker.ledger.getLedger()) as unknown as { availableBalance: bigint };
      available = ledger.availableBalance;
    } catch {
      available = undefined;
    }
    this.#funds = { locked, available, at: this.#now() };
    return this.#funds;
  }

  signatureUrl(id: string, algo: 'ecdsa' | 'ed25519'): URL {
    // As the SDK asks for it (Verifier.fetchSignatureByChatID): the model is not URL-encoded and
    // may contain '/', docs/protocol.md.
    return new URL(
      `${this.#service.url}/v1/proxy/signature/${encodeURIComponent(id)}?model=${this.#service.model}&signing_algo=${algo}`,
    );
  }

  async fetchAttestation(
    nonce: Uint8Array,
    algo: 'ecdsa' | 'ed25519',
  ): Promise<{ report: unknown; source: string }> {
    const separated = this.#signer.layout === 'separated';
    const url = separated
      ? `${this.#service.url}/v1/proxy/attestation/report?nonce=${toHex(nonce)}&signing_algo=${algo}`
      : `${this.#service.url}/v1/quote`;
    const source = separated
      ? '0G broker /v1/proxy/attestation/report (the model TEE behind the broker)'
      : '0G broker /v1/quote (the broker signs in its CVM)';
    let status = 0;
    let body: unknown;
    try {
      const res = await this.#fetch(url, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.#options.attestationTimeoutMs ?? 30_000),
      });
      status = res.status;
      body = res.ok ? ((await res.json()) as unknown) : undefined;
    } catch (error) {
      throw new SidecarError(`attestation from the 0G provider could not be fetched (${source})`, {
        status: 502,
        code: 'attestation_unavailable',
        cause: error,
      });
    }
    if (body === undefined) {
      throw new SidecarError(`the 0G provider answered HTTP ${status} for its attestation (${source})`, {
        status: 502,
        code: 'attestation_unavailable',
      });
    }
    return { report: separated ? body : adaptBrokerQuote(body), source };
  }

  async expectedSigner(): Promise<string | undefined> {
    const ttl = this.#options.chainCacheMs ?? 10_000;
    if (this.#now() - this.#signer.at >= ttl) {
      const service = serviceOf(await this.#serving.getFunction('getService')(this.#service.provider));
      if (!service.teeSignerAcknowledged) {
        throw new SidecarError(
          `the 0G contract owner no longer acknowledges provider ${service.provider}'s TEE signer`,
          { status: 502, code: 'zg_signer_not_acknowledged' },
        );
      }
      this.#service = service;
      this.#signer = { ...signerOfService(service), at: this.#now() };
    }
    return this.#ethers.getAddress(this.#signer.address);
  }

  async afterAnswer(input: {
    id: string;
    responseBody: Uint8Array;
    streamed: boolean;
    usage?: unknown;
  }): Promise<boolean> {
    this.#answers += 1;
    const usage =
      typeof input.usage === 'object' && input.usage !== null
        ? (input.usage as Record<string, unknown>)
        : usageOf(input.responseBody, input.streamed);
    if (usage !== undefined) {
      this.#spend +=
        tokens(usage['prompt_tokens']) * this.#service.inputPrice +
        tokens(usage['completion_tokens']) * this.#service.outputPrice;
    }
    let verdict: boolean | null | undefined;
    try {
      // The SDK accumulates the fee for its auto-funding and checks the signature against the
      // chain's signer. Its boolean is required, not sufficient: the gateway checks more.
      verdict = await this.#broker.inference.processResponse(
        this.#service.provider,
        input.id,
        usage === undefined ? undefined : JSON.stringify(usage),
      );
    } catch {
      verdict = false;
    }
    if (verdict !== true) this.#sdkRejected += 1;
    return verdict === true;
  }

  async health(): Promise<Record<string, unknown>> {
    const format = (v: bigint) => this.#ethers.formatEther(v);
    const out: Record<string, unknown> = {
      wallet: this.#wallet,
      provider: this.#service.provider,
      model: this.#service.model,
      answers: this.#answers,
      sdk_rejected: this.#sdkRejected,
      spend_0g: format(this.#spend),
    };
    return { ...out, ...(await this.#chainHealth()) };
  }

  /**
   * Ledger and sub-account as /health shows them, read at most once per chainCacheMs: a health
   * check polled every few seconds must not become RPC load.
   */
  async #chainHealth(): Promise<Record<string, unknown>> {
    const ttl = this.#options.chainCacheMs ?? 10_000;
    if (this.#health !== undefined && this.#now() - this.#health.at < ttl) return this.#health.view;
    const format = (v: bigint) => this.#ethers.formatEther(v);
    const view: Record<string, unknown> = {};
    try {
      const ledger = (await this.#broker.ledger.getLedger()) as unknown as {
        availableBalance: bigint;
        totalBalance: bigint;
      };
      view['ledger'] = {
        total_0g: format(ledger.totalBalance),
        available_0g: format(ledger.availableBalance),
      };
    } catch {
      view['ledger'] = null;
      view['ledger_hint'] = 'no ledger: restart with --zg-create-ledger <amount>';
    }
    try {
      const account = (await this.#serving.getFunction('getAccount')(
        this.#wallet,
        this.#service.provider,
      )) as { balance: bigint; pendingRefund: bigint };
      view['sub_account'] = {
        balance_0g: format(account.balance),
        pending_refund_0g: format(account.pendingRefund),
      };
    } catch {
      view['sub_account'] = null;
    }
    this.#health = { view, at: this.#now() };
    return view;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#broker.inference.stopAutoFunding();
    this.#rpc.destroy();
  }
}

const rpcChainId = async (fetchFn: typeof globalThis.fetch, rpcUrl: string): Promise<bigint> => {
  const unreachable = (cause?: unknown) =>
    new SidecarError(`the 0G RPC at ${originOf(rpcUrl)} did not answer eth_chainId`, {
      status: 502,
      code: 'zg_rpc_unreachable',
      cause,
    });
  try {
    const res = await fetchFn(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(15_000),
    });
    const body = (await res.json()) as { result?: unknown };
    if (typeof body.result !== 'string' || !/^0x[0-9a-fA-F]+$/.test(body.result)) throw unreachable();
    return BigInt(body.result);
  } catch (error) {
    throw error instanceof SidecarError ? error : unreachable(error);
  }
};

/**
 * `--zg-provider` as an address: that service, if it is TeeML and acknowledged. As a model name:
 * the acknowledged TeeML services serving exactly that model, cheapest first (input + output
 * price), ties broken by address so the choice is stable.
 */
const resolveService = async (
  broker: Broker,
  serving: InstanceType<Ethers['Contract']>,
  wanted: string,
): Promise<ServiceView> => {
  if (ADDRESS.test(wanted)) {
    let service: ServiceView;
    try {
      service = serviceOf(await serving.getFunction('getService')(wanted));
    } catch {
      throw new SidecarError(`no 0G service is registered for provider ${wanted}`, {
        status: 404,
        code: 'zg_provider_not_found',
        param: '--zg-provider',
      });
    }
    if (!isTeeMl(service)) {
      throw new SidecarError(`0G provider ${wanted} is not a TeeML service; its answers cannot be verified`, {
        status: 400,
        code: 'zg_provider_not_verifiable',
        param: '--zg-provider',
      });
    }
    if (!service.teeSignerAcknowledged) {
      throw new SidecarError(`the 0G contract owner has not acknowledged provider ${wanted}'s TEE signer`, {
        status: 400,
        code: 'zg_signer_not_acknowledged',
        param: '--zg-provider',
      });
    }
    return service;
  }
  const candidates: ServiceView[] = [];
  for (let offset = 0; ; offset += 50) {
    const page = (await broker.inference.listService(offset, 50, false)) as unknown[];
    for (const raw of page) {
      const service = serviceOf(raw);
      if (service.model === wanted && isTeeMl(service) && service.teeSignerAcknowledged)
        candidates.push(service);
    }
    if (page.length < 50) break;
  }
  candidates.sort((a, b) => {
    const price = a.inputPrice + a.outputPrice - (b.inputPrice + b.outputPrice);
    if (price !== 0n) return price < 0n ? -1 : 1;
    return a.provider.toLowerCase() < b.provider.toLowerCase() ? -1 : 1;
  });
  const chosen = candidates[0];
  if (chosen === undefined) {
    throw new SidecarError(`no acknowledged TeeML provider on this 0G network serves model ${wanted}`, {
      status: 404,
      code: 'zg_provider_not_found',
      param: '--zg-provider',
    });
  }
  return chosen;
};

/** ZgLink.create, as a function (the gateway CLI's entry). */
export const createZgLink = (options: ZgLinkOptions): Promise<ZgLink> => ZgLink.create(options);
