import { keccak_256 } from '@noble/hashes/sha3.js';
import { toHex } from '../bytes/index.js';
import { type CheckOutcome, type DoctorCheck, fail, pass, skip } from './check.js';
import type { DoctorContext } from './context.js';
import { describeError, showUrl } from './describe-error.js';

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/**
 * `service.targetTeeAddress` from a 0G provider broker config file (config.local.yaml; the broker's
 * `config.Service` yaml tag, docs/0g-tapp.md). A line scan, not a YAML parser: the broker's file
 * has one `targetTeeAddress:` key per service and the value is a bare or quoted address.
 */
export const targetTeeAddressesOf = (yaml: string): string[] =>
  [...yaml.matchAll(/^\s*-?\s*targetTeeAddress\s*:(.*)$/gm)].map((m) =>
    (m[1] ?? '')
      .replace(/\s#.*$/, '')
      .trim()
      .replace(/^(["'])(.*)\1$/, '$2'),
  );

/**
 * `zg.target`: the address the 0G broker registers as `targetTeeAddress` (0G SDKs check every
 * signature against it when `targetSeparated` is true) must be our signing address.
 */
export const zgChecks = (ctx: DoctorContext): DoctorCheck[] => {
  const { inputs, deps, state } = ctx;
  const target: DoctorCheck = {
    id: 'zg.target',
    timeoutMs: ctx.timeout('zg.target', 5000),
    failHint: 'the broker config file could not be read',
    async run(): Promise<CheckOutcome> {
      let registered: string[];
      let source: string;
      if (inputs.zgTargetTeeAddress !== undefined) {
        registered = [inputs.zgTargetTeeAddress];
        source = '--zg-target-tee-address';
      } else if (inputs.zgBrokerConfigPath !== undefined) {
        source = inputs.zgBrokerConfigPath;
        try {
          registered = targetTeeAddressesOf(new TextDecoder().decode(await deps.readFile(source)));
        } catch (error) {
          return fail(
            `broker config ${source}: ${describeError(error)}`,
            "give the broker's config.local.yaml",
          );
        }
        if (registered.length === 0) {
          return fail(
            `broker config ${source}: no service.targetTeeAddress`,
            "set targetSeparated: true and targetTeeAddress: <our signing address> in the broker's service",
          );
        }
      } else {
        return skip('no 0G broker configuration given (--zg-broker-config or --zg-target-tee-address)');
      }
      const ours = state.signingAddress;
      if (ours === undefined)
        return skip(`our signing address is unknown (see keys.source); registered: ${registered.join(', ')}`);
      const bad = registered.filter((a) => !ADDRESS.test(a));
      if (bad.length > 0) return fail(`${source}: targetTeeAddress is not an address`, `set it to ${ours}`);
      const mismatch = registered.filter((a) => a.toLowerCase() !== ours.toLowerCase());
      if (mismatch.length > 0) {
        return fail(
          `${source}: targetTeeAddress ${mismatch.join(', ')} is not our signing address ${ours}`,
          `set targetTeeAddress: ${ours} and restart the broker (it re-registers the service on chain); 0G users reject every signature until then`,
        );
      }
      return pass(`${source}: targetTeeAddress equals our signing address ${ours}`);
    },
  };
  const chain: DoctorCheck = {
    id: 'zg.chain',
    timeoutMs: ctx.timeout('zg.chain', 15_000),
    failHint: 'the 0G RPC did not answer in time: check --zg-rpc',
    run: (signal) => checkOnChain(ctx, signal),
  };
  return [target, chain];
};

/** `getService(address)` of 0G's inference serving contract (first 4 bytes of its keccak256). */
export const GET_SERVICE_SELECTOR = toHex(
  keccak_256(new TextEncoder().encode('getService(address)')).subarray(0, 4),
);

const MAX_RPC_BYTES = 1024 * 1024;

/**
 * Finds the service's `additionalInfo` in an ABI-encoded `getService` answer without depending on
 * the Service struct's field order (it changed between contract versions): every ABI string is a
 * 32-byte length word followed by its bytes, so each word is tried as a length, and the first
 * string that is a JSON object with `TargetTeeAddress` or `TargetSeparated` is the one. The
 * registration writes it as JSON (broker: `AdditionalInfo`).
 */
export const findAdditionalInfo = (
  answer: Uint8Array,
): { TargetSeparated?: unknown; TargetTeeAddress?: unknown } | undefined => {
  const view = new DataView(answer.buffer, answer.byteOffset, answer.byteLength);
  for (let at = 0; at + 32 <= answer.length; at += 32) {
    // A plausible length: the high 24 bytes are zero and the string fits.
    if (view.getBigUint64(at, false) !== 0n || view.getBigUint64(at + 8, false) !== 0n) continue;
    if (view.getBigUint64(at + 16, false) !== 0n) continue;
    const length = Number(view.getBigUint64(at + 24, false));
    if (length < 2 || at + 32 + length > answer.length || answer[at + 32] !== 0x7b /* { */) continue;
    try {
      const value = JSON.parse(
        new TextDecoder('utf-8', { fatal: true }).decode(answer.subarray(at + 32, at + 32 + length)),
      );
      if (
        typeof value === 'object' &&
        value !== null &&
        ('TargetTeeAddress' in value || 'TargetSeparated' in value)
      ) {
        return value as { TargetSeparated?: unknown; TargetTeeAddress?: unknown };
      }
    } catch {
      // Not this string.
    }
  }
  return undefined;
};

/**
 * `zg.chain` (optional, with `--zg-rpc`, `--zg-serving-contract` and `--zg-provider`): what users'
 * SDKs will read: the service the provider registered on chain, through `eth_call
 * getService(provider)`, must say `TargetSeparated: true` and `TargetTeeAddress` = our address.
 */
const checkOnChain = async (ctx: DoctorContext, signal: AbortSignal): Promise<CheckOutcome> => {
  const { inputs, deps, state } = ctx;
  const { zgRpcUrl: rpc, zgServingContract: contract, zgProviderAddress: provider } = inputs;
  if (rpc === undefined && contract === undefined && provider === undefined) {
    return skip('no 0G chain access given (--zg-rpc, --zg-serving-contract, --zg-provider)');
  }
  if (rpc === undefined || contract === undefined || provider === undefined) {
    return fail(
      '0G chain check needs --zg-rpc, --zg-serving-contract and --zg-provider together',
      'give all three, or none',
    );
  }
  if (!ADDRESS.test(contract) || !ADDRESS.test(provider)) {
    return fail(
      '--zg-serving-contract and --zg-provider must be 0x addresses',
      'give the inference serving contract and the provider wallet address',
    );
  }
  const ours = state.signingAddress;
  if (ours === undefined) return skip('our signing address is unknown (see keys.source)');
  const where = `getService(${provider}) on ${contract} via ${showUrl(rpc)}`;
  const data = `0x${GET_SERVICE_SELECTOR}${provider.slice(2).toLowerCase().padStart(64, '0')}`;
  let result: string;
  try {
    const response = await deps.fetch(rpc, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'eth_call',
        params: [{ to: contract, data }, 'latest'],
      }),
      signal,
    });
    const text = await response.text();
    if (response.status !== 200 || text.length > MAX_RPC_BYTES * 2) {
      return fail(`${where}: HTTP ${response.status}`, 'check --zg-rpc (a 0G EVM JSON-RPC endpoint)');
    }
    const body = JSON.parse(text) as { result?: unknown; error?: { message?: unknown } };
    if (typeof body.result !== 'string' || !/^0x(?:[0-9a-fA-F]{2})*$/.test(body.result)) {
      return fail(
        `${where}: the call reverted or failed${typeof body.error?.message === 'string' ? ` (${body.error.message.slice(0, 120)})` : ''}`,
        'the provider has no service registered on this contract: check the contract address and that the broker registered',
      );
    }
    result = body.result;
  } catch (error) {
    if (signal.aborted) throw error;
    return fail(
      `${where}: ${describeError(error)}`,
      'check --zg-rpc (a 0G EVM JSON-RPC endpoint this machine reaches)',
    );
  }
  const info = findAdditionalInfo(Buffer.from(result.slice(2), 'hex'));
  if (info === undefined) {
    return fail(
      `${where}: no additionalInfo with TargetTeeAddress in the registered service`,
      'start the broker with targetSeparated: true and targetTeeAddress set; it registers them on start',
    );
  }
  if (info.TargetSeparated !== true) {
    return fail(
      `${where}: TargetSeparated is not true: SDKs check signatures against the broker's own signer, not ours`,
      `set targetSeparated: true and targetTeeAddress: ${ours} in the broker config and restart it`,
    );
  }
  const registered = typeof info.TargetTeeAddress === 'string' ? info.TargetTeeAddress : '';
  if (registered.toLowerCase() !== ours.toLowerCase()) {
    return fail(
      `${where}: TargetTeeAddress ${ADDRESS.test(registered) ? registered : '(not an address)'} is not our signing address ${ours}`,
      `set targetTeeAddress: ${ours} in the broker config and restart it (it updates the service on chain)`,
    );
  }
  return pass(`${where}: TargetSeparated true, TargetTeeAddress equals our signing address ${ours}`);
};
