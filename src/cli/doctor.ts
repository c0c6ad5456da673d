import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/index.js';
import {
  type CheckResult,
  type DoctorDeps,
  type DoctorInputs,
  exitCodeOf,
  renderHuman,
  renderJson,
  runDoctor,
  verdictOf,
} from '../doctor/index.js';
import { VERSION } from '../server/index.js';
import { httpUrl, UsageError } from './usage.js';

export const DOCTOR_USAGE = `Usage: teeml-sidecar doctor [options]

Preflight inside the CVM: checks, with the configuration serve would use (the environment, see
README), that this machine can attest (TDX quote, GPU evidence), sign (keys) and serve (upstream,
Redis, TLS, port). Every check prints PASS, WARN, FAIL or SKIP, what it saw, and what to do.
Exit status: 0 nothing failed, 1 a check failed, 2 the doctor itself failed (or a usage error).

Options:
  --json                       machine-readable: {"verdict","summary","checks":[{"id","status","detail","hint"}]}
                               verdict: ready, development (simulated, no TEE here: fine for
                               development) or not-ready
  --nras                       also submit this machine's GPU evidence to NRAS (NRAS_URL) for a verdict
  --pccs-url <url>             PCCS for quote collateral (default: Intel PCS)
  --collateral <file>          quote collateral JSON (dcap-qvl Collateral) instead of fetching it
  --tls-cert <file>            PEM certificate the sidecar serves TLS with (checked with --tls-key)
  --tls-key <file>             its PEM private key (never printed)
  --zg-broker-config <file>    0G provider broker config (config.local.yaml): its targetTeeAddress must be ours
  --zg-target-tee-address <a>  or the registered targetTeeAddress itself
  --zg-rpc <url>               0G EVM JSON-RPC: read the service registered on chain (with the next two)
  --zg-serving-contract <a>    the inference serving contract address
  --zg-provider <a>            the provider wallet address the broker registered with
  -h, --help                   this text
`;

const parseInputs = (argv: string[]): { json: boolean; help: boolean; inputs: DoctorInputs } => {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(argv).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const inputs: DoctorInputs = {};
  if (values.nras === true) inputs.nras = true;
  if (values['pccs-url'] !== undefined) inputs.pccsUrl = httpUrl('--pccs-url', values['pccs-url']);
  if (values.collateral !== undefined) inputs.collateralPath = values.collateral;
  if (values['tls-cert'] !== undefined) inputs.tlsCertPath = values['tls-cert'];
  if (values['tls-key'] !== undefined) inputs.tlsKeyPath = values['tls-key'];
  if (values['zg-broker-config'] !== undefined) inputs.zgBrokerConfigPath = values['zg-broker-config'];
  if (values['zg-target-tee-address'] !== undefined)
    inputs.zgTargetTeeAddress = values['zg-target-tee-address'];
  if (values['zg-rpc'] !== undefined) inputs.zgRpcUrl = httpUrl('--zg-rpc', values['zg-rpc']);
  if (values['zg-serving-contract'] !== undefined) inputs.zgServingContract = values['zg-serving-contract'];
  if (values['zg-provider'] !== undefined) inputs.zgProviderAddress = values['zg-provider'];
  return { json: values.json === true, help: values.help === true, inputs };
};

const parse = (argv: string[]) =>
  parseArgs({
    args: argv,
    allowPositionals: false,
    strict: true,
    options: {
      json: { type: 'boolean' },
      nras: { type: 'boolean' },
      'pccs-url': { type: 'string' },
      collateral: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'zg-broker-config': { type: 'string' },
      'zg-target-tee-address': { type: 'string' },
      'zg-rpc': { type: 'string' },
      'zg-serving-contract': { type: 'string' },
      'zg-provider': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });

interface Writable {
  write(text: string): unknown;
}

/**
 * `teeml-sidecar doctor`: returns the exit status (docs/protocol.md): 0 nothing failed, 1 a check
 * failed, 2 usage error or the doctor itself failed. An invalid configuration is a failed check
 * (the operator fixes it), printed like the others.
 */
export const doctorCommand = async (
  argv: string[],
  env: Record<string, string | undefined>,
  stdout: Writable,
  stderr: Writable,
  deps: Partial<DoctorDeps> = {},
): Promise<number> => {
  let options: ReturnType<typeof parseInputs>;
  try {
    options = parseInputs(argv);
  } catch (error) {
    stderr.write(`teeml-sidecar doctor: ${(error as Error).message}\n\n${DOCTOR_USAGE}`);
    return 2;
  }
  if (options.help) {
    stdout.write(DOCTOR_USAGE);
    return 0;
  }
  const render = (results: CheckResult[], setup = { simulated: false, demoUpstream: false }) => {
    const verdict = verdictOf(results, setup);
    stdout.write(
      options.json
        ? renderJson(results, verdict)
        : renderHuman(results, `teeml-sidecar ${VERSION} doctor`, verdict),
    );
  };
  let results: CheckResult[];
  let setup = { simulated: false, demoUpstream: false };
  try {
    let config: ReturnType<typeof loadConfig>;
    try {
      config = loadConfig(env);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      // ConfigError names the variables, never their values.
      results = [
        {
          id: 'config',
          status: 'fail',
          detail: error.message.replace(/\n\s*/g, ' ').replace(/:\s+/, ': '),
          hint: 'fix the variables named (README, Configuration); nothing else can be checked before that',
        },
      ];
      render(results);
      return 1;
    }
    results = await runDoctor(config, options.inputs, deps);
    // Simulated as serve would run it: the default, or auto with its explicit fallback (no TEE found).
    setup = {
      simulated:
        config.TEE_PROVIDER === 'simulated' ||
        (config.TEE_PROVIDER === 'auto' && config.TEE_AUTO_ALLOW_SIMULATED),
      demoUpstream: config.UPSTREAM_URL === undefined,
    };
  } catch (error) {
    stderr.write(`teeml-sidecar doctor: the doctor itself failed: ${(error as Error).message}\n`);
    return 2;
  }
  render(results, setup);
  return exitCodeOf(results);
};
