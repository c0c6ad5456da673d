import { SidecarError } from '../errors/index.js';
import { readWalletKey } from './wallet-key.js';
import { MIN_LEDGER_0G, type ZgLinkOptions } from './zg-link.js';

/** The gateway's `--zg-*` flags as parsed strings (docs/protocol.md, "Command-line interfaces"). */
export interface ZgFlags {
  rpc?: string;
  provider?: string;
  privateKeyFile?: string;
  ledgerAddress?: string;
  inferenceAddress?: string;
  createLedger?: string;
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

const bad = (flag: string, message: string): SidecarError =>
  new SidecarError(`${flag} ${message}`, { status: 400, code: 'invalid_zg_option', param: flag });

/** True when any 0G flag is given: the gateway then runs in 0G mode instead of `--provider`. */
export const isZgMode = (flags: ZgFlags): boolean =>
  Object.values(flags).some((value) => value !== undefined && value !== '');

/**
 * Checks the `--zg-*` flags and reads the wallet key (ZG_PRIVATE_KEY or --zg-private-key-file, never
 * a flag value) into ZgLinkOptions. `--zg-rpc` and `--zg-provider` are required; contract addresses
 * default to the SDK's per-chain addresses; `--zg-create-ledger` is an amount in 0G, at least 3
 * (LedgerManager.MIN_ACCOUNT_BALANCE). Messages name the flag, never a key.
 */
export const zgLinkOptionsFromFlags = async (
  flags: ZgFlags,
  env: Readonly<Record<string, string | undefined>>,
  readFile?: (path: string) => Promise<string>,
): Promise<ZgLinkOptions> => {
  if (flags.rpc === undefined || flags.rpc === '') throw bad('--zg-rpc', 'is required in 0G mode');
  let rpc: URL;
  try {
    rpc = new URL(flags.rpc);
  } catch {
    throw bad('--zg-rpc', 'expected an http(s) URL');
  }
  if (rpc.protocol !== 'http:' && rpc.protocol !== 'https:') throw bad('--zg-rpc', 'expected an http(s) URL');
  const provider = flags.provider?.trim() ?? '';
  if (provider === '')
    throw bad('--zg-provider', 'is required in 0G mode (a provider address or a model name)');
  if (provider.startsWith('0x') && !ADDRESS.test(provider)) {
    throw bad('--zg-provider', 'looks like an address but is not 20 bytes of hex');
  }
  for (const [flag, value] of [
    ['--zg-ledger-address', flags.ledgerAddress],
    ['--zg-inference-address', flags.inferenceAddress],
  ] as const) {
    if (value !== undefined && !ADDRESS.test(value))
      throw bad(flag, 'expected a 0x-prefixed 20-byte address');
  }
  let createLedger: number | undefined;
  if (flags.createLedger !== undefined) {
    createLedger = Number(flags.createLedger);
    if (!/^\d+(\.\d+)?$/.test(flags.createLedger) || !(createLedger >= MIN_LEDGER_0G)) {
      throw bad('--zg-create-ledger', `expected an amount in 0G of at least ${MIN_LEDGER_0G}`);
    }
  }
  const privateKey = await readWalletKey({
    env,
    ...(flags.privateKeyFile === undefined ? {} : { keyFile: flags.privateKeyFile }),
    ...(readFile === undefined ? {} : { readFile }),
  });
  return {
    rpcUrl: flags.rpc,
    provider,
    privateKey,
    ...(flags.ledgerAddress === undefined ? {} : { ledgerAddress: flags.ledgerAddress }),
    ...(flags.inferenceAddress === undefined ? {} : { inferenceAddress: flags.inferenceAddress }),
    ...(createLedger === undefined ? {} : { createLedger }),
  };
};
