import { createSigners } from '../keys/index.js';
import { selectKeySource } from '../server/index.js';
import { type DoctorCheck, fail, pass, warn } from './check.js';
import type { DoctorContext } from './context.js';
import { describeError } from './describe-error.js';

const EPHEMERAL_HINT =
  '0G clients check every signature against the address the broker registered on chain (targetTeeAddress): use KEY_SOURCE=dstack or KEY_SOURCE=tapp, stable per app';

/**
 * `keys.source`: loads the signing keys the way serve does, shows the addresses (public, never the
 * keys), and loads them a second time to prove the address is stable across restarts. The key
 * material goes straight into createSigners, which zeroes it.
 */
export const keyChecks = (ctx: DoctorContext): DoctorCheck[] => {
  const { config, state } = ctx;
  const source: DoctorCheck = {
    id: 'keys.source',
    timeoutMs: ctx.timeout('keys.source', config.ATTESTATION_TIMEOUT_MS),
    failHint:
      config.KEY_SOURCE === 'dstack'
        ? 'the Dstack guest agent did not answer GetKey: mount /var/run/dstack.sock and run on Dstack with a KMS'
        : 'the Tapp agent did not answer GetAppSecretKey: set TAPP_APP_ID and keep TAPP_ENDPOINT on the unix socket',
    async run(signal) {
      const keys = selectKeySource(config);
      let first: ReturnType<typeof createSigners>;
      try {
        first = createSigners(await keys.load(signal));
      } catch (error) {
        return fail(`KEY_SOURCE=${config.KEY_SOURCE}: ${describeError(error)}`, source.failHint);
      }
      state.signingAddress = first.ecdsa.address;
      const seen = `KEY_SOURCE=${config.KEY_SOURCE}${config.KEY_SOURCE === 'dstack' ? ` (path ${config.DSTACK_KEY_PATH})` : ''}: signing address ${first.ecdsa.address}, ed25519 ${first.ed25519.address}`;
      if (keys.kind === 'ephemeral') {
        return warn(`${seen}; ephemeral: a new address at every start`, EPHEMERAL_HINT);
      }
      let second: ReturnType<typeof createSigners>;
      try {
        second = createSigners(await keys.load(signal));
      } catch (error) {
        return fail(`${seen}; the second derivation failed: ${describeError(error)}`, source.failHint);
      }
      if (second.ecdsa.address !== first.ecdsa.address || second.ed25519.address !== first.ed25519.address) {
        return fail(
          `${seen}; derived again: ${second.ecdsa.address}: NOT stable`,
          'the key source gave two different keys: every restart would break 0G clients; report this platform issue',
        );
      }
      return pass(`${seen}; derived twice: same address (stable across restarts)`);
    },
  };
  return [source];
};
