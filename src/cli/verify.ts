import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { NRAS_BASE_URL } from '../gpu/index.js';
import { type Collateral, loadCollateral } from '../tdx/index.js';
import {
  type CheckResult,
  type MeasurementAllowLists,
  TCB_STATUSES,
  type VerificationResult,
  type VerifyProviderOptions,
  verifyProvider,
} from '../verifier/index.js';
import { explainParseError } from './parse-error.js';
import { httpUrl, UsageError } from './usage.js';

export const VERIFY_USAGE = `Usage: teeml-sidecar verify <base-url> [options]

Checks a provider end to end: attestation report for a fresh nonce (TDX quote, report_data binding,
Dstack measurements, GPU evidence, NRAS), then a non-streaming and a streaming chat completion whose
signatures must come from the attested key. Exit status: 0 all required checks passed, 1 a check
failed, 2 usage error.

Options:
  --json                      machine-readable output
  --allow-simulated           accept simulated reports (they prove nothing; for development)
  --offline                   do not consult NVIDIA NRAS
  --at <iso|unix>             verify at this time instead of now (e.g. with recorded collateral)
  --collateral <file>         Intel collateral JSON (dcap-qvl Collateral) instead of fetching it
  --pccs-url <url>            PCCS to fetch collateral from (default: Phala's PCCS)
  --nras-url <url>            NRAS base URL (default ${NRAS_BASE_URL})
  --accept-tcb <list>         TCB statuses accepted besides UpToDate, e.g. SWHardeningNeeded,OutOfDate
  --expect-address <addr>     the signing address must be this one (0G targetTeeAddress)
  --compose-hash <hex>        expected Dstack compose hash
  --compose-file <path>       app-compose.json whose sha256 is the expected compose hash
  --mrtd <hex,...>            allowed MRTD values (also --rtmr0, --rtmr1, --rtmr2, --os-image-hash)
  --signing-algo <algo>       ecdsa (default) or ed25519
  --model <name>              model for the test completions (default: first of /v1/models)
  --api-key <token>           bearer token for providers that require one (AUTH_TOKEN); never printed
  --e2ee                      send the test completions end-to-end encrypted (NEAR AI protocol) to the
                              attested key; check that the answers decrypt and are still signed
  --no-completion             skip the test completions and their signature checks
  --no-tls-binding            https: do not ask for or check the attested TLS certificate
                              (by default the report is fetched with include_tls_fingerprint=true and
                              the certificate of that same connection must be the bound one)
  --allow-no-gpu              accept a report without GPU evidence
  -h, --help                  this text
`;

/** I/O the command uses; tests inject doubles. */
export interface VerifyCommandDeps {
  fetch?: typeof globalThis.fetch;
  now?: () => number;
  readFile?: (path: string) => Promise<Uint8Array>;
}

const list = (values: readonly string[] | undefined): string[] =>
  (values ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');

const hexList = (
  flag: string,
  values: readonly string[] | undefined,
  bytes: number,
): string[] | undefined => {
  const items = list(values).map((v) => v.replace(/^0x/i, '').toLowerCase());
  for (const item of items) {
    if (!new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(item)) {
      throw new UsageError(`${flag}: expected ${bytes}-byte hex values, got one of length=${item.length}`);
    }
  }
  return items.length > 0 ? items : undefined;
};

/** `--at`: Unix seconds, or an ISO 8601 date. */
export const parseAt = (value: string): number => {
  if (/^\d+$/.test(value)) return Number(value);
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw new UsageError('--at: expected an ISO 8601 time or Unix seconds');
  return Math.floor(ms / 1000);
};

const parse = (argv: string[]) =>
  parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: VERIFY_FLAGS,
  });

const VERIFY_FLAGS = {
  json: { type: 'boolean' },
  'allow-simulated': { type: 'boolean' },
  offline: { type: 'boolean' },
  at: { type: 'string' },
  collateral: { type: 'string' },
  'pccs-url': { type: 'string' },
  'nras-url': { type: 'string' },
  'accept-tcb': { type: 'string', multiple: true },
  'expect-address': { type: 'string' },
  'compose-hash': { type: 'string' },
  'compose-file': { type: 'string' },
  mrtd: { type: 'string', multiple: true },
  rtmr0: { type: 'string', multiple: true },
  rtmr1: { type: 'string', multiple: true },
  rtmr2: { type: 'string', multiple: true },
  'os-image-hash': { type: 'string', multiple: true },
  'signing-algo': { type: 'string' },
  model: { type: 'string' },
  'api-key': { type: 'string' },
  'no-completion': { type: 'boolean' },
  'no-tls-binding': { type: 'boolean' },
  e2ee: { type: 'boolean' },
  'allow-no-gpu': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const buildOptions = async (
  values: ReturnType<typeof parse>['values'],
  baseUrl: string,
  deps: VerifyCommandDeps,
): Promise<VerifyProviderOptions> => {
  const read = deps.readFile ?? (async (path: string) => new Uint8Array(await readFile(path)));
  const algo = values['signing-algo'] ?? 'ecdsa';
  if (algo !== 'ecdsa' && algo !== 'ed25519')
    throw new UsageError('--signing-algo: expected ecdsa or ed25519');
  if (values['compose-hash'] !== undefined && values['compose-file'] !== undefined) {
    throw new UsageError('--compose-hash and --compose-file are exclusive');
  }
  const accepted = list(values['accept-tcb']);
  for (const status of accepted) {
    if (!(TCB_STATUSES as readonly string[]).includes(status)) {
      throw new UsageError(`--accept-tcb: unknown TCB status (known: ${TCB_STATUSES.join(', ')})`);
    }
  }
  const expectAddress = values['expect-address'];
  if (expectAddress !== undefined && !/^(0x)?([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/.test(expectAddress)) {
    throw new UsageError('--expect-address: expected a 0x address (or a 32-byte ed25519 key)');
  }
  const allow: MeasurementAllowLists = {};
  const mrtd = hexList('--mrtd', values.mrtd, 48);
  const rtmr0 = hexList('--rtmr0', values.rtmr0, 48);
  const rtmr1 = hexList('--rtmr1', values.rtmr1, 48);
  const rtmr2 = hexList('--rtmr2', values.rtmr2, 48);
  const osImageHash = hexList('--os-image-hash', values['os-image-hash'], 32);
  if (mrtd) allow.mrtd = mrtd;
  if (rtmr0) allow.rtmr0 = rtmr0;
  if (rtmr1) allow.rtmr1 = rtmr1;
  if (rtmr2) allow.rtmr2 = rtmr2;
  if (osImageHash) allow.osImageHash = osImageHash;
  const composeHash = hexList(
    '--compose-hash',
    values['compose-hash'] === undefined ? undefined : [values['compose-hash']],
    32,
  );

  let collateral: Collateral | undefined;
  if (values.collateral !== undefined) {
    const path = values.collateral;
    try {
      collateral = await loadCollateral(path, async (p) => new TextDecoder().decode(await read(p)));
    } catch (error) {
      throw new UsageError(`--collateral: ${error instanceof Error ? error.message : 'unreadable'}`);
    }
  }
  let composeFile: Uint8Array | undefined;
  if (values['compose-file'] !== undefined) {
    try {
      composeFile = await read(values['compose-file']);
    } catch {
      throw new UsageError('--compose-file: cannot read the file');
    }
  }
  return {
    baseUrl,
    signingAlgo: algo,
    acceptTcb: ['UpToDate', ...accepted],
    allowSimulated: values['allow-simulated'] === true,
    offline: values.offline === true,
    allowNoGpu: values['allow-no-gpu'] === true,
    completion: values['no-completion'] !== true,
    tlsBinding: values['no-tls-binding'] !== true,
    e2ee: values.e2ee === true,
    allow,
    ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
    ...(deps.now === undefined ? {} : { now: deps.now }),
    ...(values.at === undefined ? {} : { at: parseAt(values.at) }),
    ...(collateral === undefined ? {} : { collateral }),
    ...(values['pccs-url'] === undefined ? {} : { pccsUrl: httpUrl('--pccs-url', values['pccs-url']) }),
    ...(values['nras-url'] === undefined ? {} : { nrasUrl: httpUrl('--nras-url', values['nras-url']) }),
    ...(expectAddress === undefined ? {} : { expectAddress }),
    ...(composeHash?.[0] === undefined ? {} : { expectedComposeHash: composeHash[0] }),
    ...(composeFile === undefined ? {} : { composeFile }),
    ...(values.model === undefined ? {} : { model: values.model }),
    ...(values['api-key'] === undefined ? {} : { headers: { authorization: `Bearer ${values['api-key']}` } }),
  };
};

const LABEL: Record<CheckResult['status'], string> = { pass: 'PASS', fail: 'FAIL', skip: 'SKIP' };

/** What to do about a failed check, where the fix is one the user can make from here. */
const HINTS: Record<string, string> = {
  'report.fetch':
    'is a teeml-sidecar (or a proxy keeping its wire format) serving there? Its base URL, with or without /v1',
  'report.simulated':
    'a simulated provider (no TEE; development only): add --allow-simulated to accept it, knowing it proves nothing',
  'report.nonce': 'the report is not for our fresh nonce: a replayed or cached report',
  'gpu.evidence': 'no GPU evidence: --allow-no-gpu accepts a provider without GPUs',
};

/** One check's line (and its hint when it failed), as `verify` prints it. */
export const formatCheck = (check: CheckResult): string => {
  const label = `${LABEL[check.status]}${check.simulated ? '*' : ''}`.padEnd(5);
  const hint = check.status === 'fail' ? HINTS[check.id] : undefined;
  return `${label} ${check.id.padEnd(24)} ${check.title}: ${check.detail}\n${hint === undefined ? '' : `${' '.repeat(31)}→ ${hint}\n`}`;
};

/** The lines after the checks: the simulated note and the verdict. */
export const formatVerdict = (result: VerificationResult): string => {
  const count = (status: CheckResult['status']) => result.checks.filter((c) => c.status === status).length;
  const lines = [''];
  if (result.checks.some((c) => c.simulated)) {
    lines.push('* passed only because of --allow-simulated: a simulated provider proves nothing.');
  }
  lines.push(
    `verdict: ${result.ok ? 'PASS' : 'FAIL'} (${count('pass')} passed, ${count('fail')} failed, ${count('skip')} skipped)`,
  );
  return `${lines.join('\n')}\n`;
};

/** The whole human report at once (the command itself prints the check lines as they complete). */
export const formatHuman = (baseUrl: string, result: VerificationResult): string =>
  `teeml-sidecar verify ${baseUrl}\nnonce ${result.nonce}, verified at ${new Date(result.at * 1000).toISOString()}\n\n${result.checks.map(formatCheck).join('')}${formatVerdict(result)}`;

/** `teeml-sidecar verify <base-url> [options]`: 0 verified, 1 a check failed, 2 usage error. */
export const verifyCommand = async (
  argv: string[],
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
  deps: VerifyCommandDeps = {},
): Promise<number> => {
  let options: VerifyProviderOptions;
  let json = false;
  try {
    const { values, positionals } = parse(argv);
    if (values.help === true) {
      stdout.write(VERIFY_USAGE);
      return 0;
    }
    if (positionals.length !== 1 || positionals[0] === undefined) {
      throw new UsageError('expected exactly one <base-url>');
    }
    json = values.json === true;
    options = await buildOptions(values, httpUrl('<base-url>', positionals[0]), deps);
  } catch (caught) {
    // parseArgs throws TypeErrors with a code for unknown or malformed options.
    const error = explainParseError(caught, Object.keys(VERIFY_FLAGS));
    if (!(error instanceof UsageError)) throw error;
    stderr.write(
      `teeml-sidecar verify: ${error.message}\n\nUsage: teeml-sidecar verify <base-url> [options] (--help for all)\n`,
    );
    return 2;
  }
  if (json) {
    // One JSON document on stdout, nothing before it.
    const result = await verifyProvider(options);
    stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return result.ok ? 0 : 1;
  }
  stdout.write(`teeml-sidecar verify ${options.baseUrl}: attesting with a fresh nonce…\n\n`);
  const result = await verifyProvider({ ...options, onCheck: (check) => stdout.write(formatCheck(check)) });
  stdout.write(formatVerdict(result));
  return result.ok ? 0 : 1;
};
