import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { runWithDeadline } from '../concurrency/index.js';
import type { Config } from '../config/index.js';
import { lazyRequire } from '../lazy/index.js';
import { createLogger } from '../log/index.js';
import { gpuEvidenceChecker } from '../server/index.js';
import type { CheckResult, DoctorCheck } from './check.js';
import type { DoctorContext, DoctorDeps, DoctorInputs } from './context.js';
import { gpuChecks } from './gpu-checks.js';
import { keyChecks } from './key-checks.js';
import { runChecks } from './run-checks.js';
import { teeChecks } from './tee-checks.js';
import { wiringChecks } from './wiring-checks.js';
import { zgChecks } from './zg-checks.js';

const dcap = lazyRequire<typeof import('@phala/dcap-qvl')>('@phala/dcap-qvl');

/** How long closing providers (sockets, NVML shutdown) may take before the doctor stops waiting. */
const CLOSE_DEADLINE_MS = 2000;

export const defaultDoctorDeps = (): DoctorDeps => ({
  fetch: globalThis.fetch,
  random: (n) => new Uint8Array(randomBytes(n)),
  now: () => new Date(),
  readFile: async (path) => new Uint8Array(await readFile(path)),
  tdxGuestDevice: '/dev/tdx_guest',
  getCollateral: (url, quote) => dcap().getCollateral(url, quote),
  gpuEvidenceChecker,
  logger: createLogger('silent'),
  timeouts: {},
});

/** The checks in the order they run and print: TEE, GPU, keys, wiring, 0G. */
export const doctorChecks = (ctx: DoctorContext): DoctorCheck[] => [
  ...teeChecks(ctx),
  ...gpuChecks(ctx),
  ...keyChecks(ctx),
  ...wiringChecks(ctx),
  ...zgChecks(ctx),
];

/**
 * `teeml-sidecar doctor`: runs every check against this machine with the configuration serve would
 * use, and returns their results. Never throws for a failing check; each has its own deadline.
 */
export const runDoctor = async (
  config: Config,
  inputs: DoctorInputs = {},
  deps: Partial<DoctorDeps> = {},
): Promise<CheckResult[]> => {
  const all: DoctorDeps = { ...defaultDoctorDeps(), ...deps };
  const ctx: DoctorContext = {
    config,
    inputs,
    deps: all,
    state: { closers: [] },
    timeout: (id, fallback) => all.timeouts[id] ?? fallback,
  };
  const configResult: CheckResult = {
    id: 'config',
    status: 'pass',
    detail: `TEE_PROVIDER=${config.TEE_PROVIDER}, GPU_EVIDENCE=${config.GPU_EVIDENCE}, KEY_SOURCE=${config.KEY_SOURCE}`,
  };
  try {
    return [configResult, ...(await runChecks(doctorChecks(ctx), all.onTimeout))];
  } finally {
    // Close what the checks opened; a provider stuck behind a hung native call is left behind.
    await Promise.all(
      ctx.state.closers.map((close) =>
        runWithDeadline(() => close(), {
          timeoutMs: CLOSE_DEADLINE_MS,
          timeoutError: () => new Error('close timed out'),
        }).catch(() => undefined),
      ),
    );
  }
};
