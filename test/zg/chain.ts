import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  Contract,
  ContractFactory,
  JsonRpcProvider,
  Network,
  NonceManager,
  parseEther,
  Wallet,
} from 'ethers';

/**
 * A local 0G chain for one test file: anvil (from npm, @foundry-rs/anvil's platform package ships
 * the binary) started on a free loopback port and stopped by `close()`, with 0G's serving contracts
 * deployed the way 0G deploys them (0g-serving-contract src/utils/utils.ts deployInBeaconProxy:
 * implementation, UpgradeableBeacon, BeaconProxy, then initialize) from bytecode that registry
 * packages ship: LedgerManager and InferenceServing from the SDK's typechain factories, the beacon
 * and proxy from @openzeppelin/contracts 4.8.3 build artifacts. Nothing is compiled or fetched.
 *
 * The order also reproduces the SDK's `hardhat` default addresses (chain 31337, deployer = the
 * node's first account): the ledger proxy is nonce 2 and the inference proxy nonce 6, so a link
 * started without --zg-ledger-address/--zg-inference-address finds them as on a real network.
 */

const require = createRequire(import.meta.url);

/** The node's well-known development accounts (anvil/hardhat mnemonic "test test … junk"). */
export const DEV_KEYS = {
  deployer: '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
  providerA: '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  providerB: '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
  providerC: '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6',
} as const;

interface Artifact {
  abi: unknown[];
  bytecode: string;
}

const sdkFactory = (path: string, name: string): Artifact => {
  const root = dirname(require.resolve('@0gfoundation/0g-compute-ts-sdk'));
  const mod = require(join(root, path)) as Record<string, { abi: unknown[]; bytecode: string }>;
  const factory = mod[name];
  if (factory === undefined) throw new Error(`the SDK no longer ships ${name}`);
  return { abi: factory.abi, bytecode: factory.bytecode };
};

const ARTIFACTS = () => ({
  ledger: sdkFactory(
    'ledger/contract/typechain/factories/LedgerManager__factory.js',
    'LedgerManager__factory',
  ),
  inference: sdkFactory(
    'inference/contract/typechain/factories/InferenceServing__factory.js',
    'InferenceServing__factory',
  ),
  beacon: require('@openzeppelin/contracts/build/contracts/UpgradeableBeacon.json') as Artifact,
  proxy: require('@openzeppelin/contracts/build/contracts/BeaconProxy.json') as Artifact,
});

const anvilBinary = (): string => {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const pkg = require.resolve(`@foundry-rs/anvil-${process.platform}-${arch}/package.json`);
  return join(dirname(pkg), 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
};

export interface ServiceRegistration {
  providerKey: string;
  url: string;
  model: string;
  /** The broker's TEE key address (settlement signer; the signer of broker-signed answers). */
  teeSignerAddress: string;
  additionalInfo: Record<string, unknown>;
  inputPrice: bigint;
  outputPrice: bigint;
  /** Whether the contract owner acknowledges the TEE signer (default true). */
  acknowledge?: boolean;
}

export interface LocalChain {
  rpcUrl: string;
  chainId: bigint;
  rpc: JsonRpcProvider;
  ledgerAddress: string;
  inferenceAddress: string;
  /** The inference contract, read-only. */
  inference: Contract;
  registerService(registration: ServiceRegistration): Promise<void>;
  /** The contract owner withdraws its acknowledgement of a provider's TEE signer. */
  revokeAcknowledgement(provider: string): Promise<void>;
  /** Sends `amount` native tokens from the deployer. */
  fund(address: string, amount: bigint): Promise<void>;
  /** The ledger contract as `key` sees it. */
  ledgerAs(key: string): Contract;
  close(): Promise<void>;
}

const listening = (child: ChildProcess): Promise<number> =>
  new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      const match = /Listening on 127\.0\.0\.1:(\d+)/.exec(seen);
      if (match?.[1] !== undefined) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`anvil exited with ${code} before listening`)));
  });

export const startLocalChain = async (): Promise<LocalChain> => {
  const child = spawn(anvilBinary(), ['--host', '127.0.0.1', '--port', '0', '--chain-id', '31337'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.resume();
  const port = await listening(child);
  const rpcUrl = `http://127.0.0.1:${port}`;
  const chainId = 31337n;
  const rpc = new JsonRpcProvider(rpcUrl, Network.from(chainId), {
    staticNetwork: true,
    cacheTimeout: -1,
    pollingInterval: 20,
  });
  const deployer = new NonceManager(new Wallet(DEV_KEYS.deployer, rpc));
  const owner = await deployer.getAddress();
  const a = ARTIFACTS();

  const deployBehindBeacon = async (artifact: Artifact): Promise<string> => {
    const impl = await new ContractFactory(artifact.abi as never, artifact.bytecode, deployer).deploy();
    await impl.waitForDeployment();
    const beacon = await new ContractFactory(a.beacon.abi as never, a.beacon.bytecode, deployer).deploy(
      await impl.getAddress(),
    );
    await beacon.waitForDeployment();
    const proxy = await new ContractFactory(a.proxy.abi as never, a.proxy.bytecode, deployer).deploy(
      await beacon.getAddress(),
      '0x',
    );
    await proxy.waitForDeployment();
    return proxy.getAddress();
  };

  const ledgerAddress = await deployBehindBeacon(a.ledger);
  const ledger = new Contract(ledgerAddress, a.ledger.abi as never, deployer);
  await (await ledger.getFunction('initialize')(owner)).wait();
  const inferenceAddress = await deployBehindBeacon(a.inference);
  const inference = new Contract(inferenceAddress, a.inference.abi as never, deployer);
  // Lock time: one hour, the contract's minimum.
  await (await inference.getFunction('initialize')(3600, ledgerAddress, owner)).wait();
  await (await ledger.getFunction('registerService')('inference', 'v1.0', inferenceAddress, 'test')).wait();

  return {
    rpcUrl,
    chainId,
    rpc,
    ledgerAddress,
    inferenceAddress,
    inference: new Contract(inferenceAddress, a.inference.abi as never, rpc),
    async registerService(r) {
      const provider = new Wallet(r.providerKey, rpc);
      const asProvider = new Contract(inferenceAddress, a.inference.abi as never, provider);
      const exists = (await inference.getFunction('serviceExists')(provider.address)) as boolean;
      const params = {
        serviceType: 'chatbot',
        url: r.url,
        model: r.model,
        verifiability: 'TeeML',
        inputPrice: r.inputPrice,
        outputPrice: r.outputPrice,
        additionalInfo: JSON.stringify(r.additionalInfo),
        teeSignerAddress: r.teeSignerAddress,
      };
      // First registration stakes MIN_PROVIDER_STAKE (100 0G); updates must not add stake.
      await (
        await asProvider.getFunction('addOrUpdateService')(params, { value: exists ? 0n : parseEther('100') })
      ).wait();
      if (r.acknowledge ?? true) {
        await (await inference.getFunction('acknowledgeTEESignerByOwner')(provider.address)).wait();
      }
    },
    async revokeAcknowledgement(provider) {
      await (await inference.getFunction('revokeTEESignerAcknowledgement')(provider)).wait();
    },
    async fund(address, amount) {
      await (await deployer.sendTransaction({ to: address, value: amount })).wait();
    },
    ledgerAs(key) {
      return new Contract(ledgerAddress, a.ledger.abi as never, new Wallet(key, rpc));
    },
    close: () =>
      new Promise<void>((resolve) => {
        rpc.destroy();
        if (child.exitCode !== null) {
          resolve();
          return;
        }
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
};
