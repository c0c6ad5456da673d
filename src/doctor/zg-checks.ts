import { type CheckOutcome, type DoctorCheck, fail, pass, skip } from './check.js';
import type { DoctorContext } from './context.js';
import { describeError } from './describe-error.js';

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
  return [target];
};
