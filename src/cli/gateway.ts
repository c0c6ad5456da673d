import { readFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { SidecarError } from '../errors/index.js';
import {
  DirectLink,
  defaultPolicy,
  fileReceiptSink,
  type Gateway,
  type GatewayOptions,
  nearE2eeClient,
  type Policy,
  type PolicyError,
  type ProviderLink,
  parsePolicy,
  startGateway,
} from '../gateway/index.js';
import { createLogger } from '../log/index.js';
import { createZgLink, isZgMode, type ZgFlags, zgLinkOptionsFromFlags } from '../zg/index.js';
import { browserFlagsOf } from './browser-flags.js';
import { explainParseError } from './parse-error.js';
import { argvTokenWarnings, withTokenFiles } from './token-files.js';
import { UsageError } from './usage.js';

/**
 * Every option of `teeml-sidecar gateway`, with its environment equivalent: the one list the
 * parser, `--help` and the README table (test/gateway/cli.test.ts) are checked against.
 */
export const GATEWAY_OPTIONS = [
  {
    flag: 'provider',
    env: 'TEEML_GATEWAY_PROVIDER',
    type: 'string',
    arg: '<url>',
    help: 'the provider (a teeml-sidecar, or a proxy that keeps its wire format); required in direct mode',
  },
  {
    flag: 'host',
    env: 'TEEML_GATEWAY_HOST',
    type: 'string',
    arg: '<addr>',
    help: 'listen address (default 127.0.0.1)',
  },
  {
    flag: 'port',
    env: 'TEEML_GATEWAY_PORT',
    type: 'string',
    arg: '<n>',
    help: 'listen port (default 8090; 0 = any free port)',
  },
  {
    flag: 'allow-simulated',
    env: 'TEEML_GATEWAY_ALLOW_SIMULATED',
    type: 'boolean',
    help: 'accept a simulated provider (development only: it proves nothing)',
  },
  {
    flag: 'accept-broker-quote',
    env: 'TEEML_GATEWAY_ACCEPT_BROKER_QUOTE',
    type: 'boolean',
    help: "0G: accept a broker's static quote, made at broker start and not for our nonce (replayable; receipts say so)",
  },
  {
    flag: 'policy',
    env: 'TEEML_GATEWAY_POLICY',
    type: 'string',
    arg: '<file>',
    help: 'policy JSON: accepted TCB statuses, measurements, compose hash, OS image, GPU, signing address',
  },
  {
    flag: 'on-failure',
    env: 'TEEML_GATEWAY_ON_FAILURE',
    type: 'string',
    arg: 'refuse|warn',
    help: 'after an answer fails verification: refuse requests until the next attestation passes (default), or only mark answers',
  },
  {
    flag: 'reattest-interval',
    env: 'TEEML_GATEWAY_REATTEST_INTERVAL',
    type: 'string',
    arg: '<duration>',
    help: 'attest again this often, with a fresh nonce (default 10m; e.g. 90s, 1h)',
  },
  {
    flag: 'receipts',
    env: 'TEEML_GATEWAY_RECEIPTS',
    type: 'string',
    arg: '<file>',
    help: 'append one JSON line per verified answer (never prompts or completions)',
  },
  {
    flag: 'header',
    env: 'TEEML_GATEWAY_HEADERS',
    type: 'string',
    multiple: true,
    arg: "'K: V'",
    help: 'extra header for the provider, repeatable (env: one per line)',
  },
  {
    flag: 'api-key',
    env: 'TEEML_GATEWAY_API_KEY',
    type: 'string',
    arg: '<token>',
    help: 'bearer token for the provider (its AUTH_TOKEN); never printed; on the command line it shows in ps: prefer the file or the environment',
  },
  {
    flag: 'api-key-file',
    env: 'TEEML_GATEWAY_API_KEY_FILE',
    type: 'string',
    arg: '<file>',
    help: 'a file holding the bearer token for the provider (instead of --api-key)',
  },
  {
    flag: 'auth-token',
    env: 'TEEML_GATEWAY_AUTH_TOKEN',
    type: 'string',
    arg: '<token>',
    help: 'bearer token the gateway requires on /v1/*; required off loopback; on the command line it shows in ps: prefer the file or the environment',
  },
  {
    flag: 'auth-token-file',
    env: 'TEEML_GATEWAY_AUTH_TOKEN_FILE',
    type: 'string',
    arg: '<file>',
    help: 'a file holding the bearer token the gateway requires (instead of --auth-token)',
  },
  {
    flag: 'allowed-host',
    env: 'TEEML_GATEWAY_ALLOWED_HOSTS',
    type: 'string',
    multiple: true,
    arg: '<name[:port]>',
    help: 'another Host name the gateway answers to besides loopback and --host, repeatable (env: one per line); others get 403',
  },
  {
    flag: 'allow-origin',
    env: 'TEEML_GATEWAY_ALLOW_ORIGINS',
    type: 'string',
    multiple: true,
    arg: '<origin>',
    help: 'a web origin (e.g. http://localhost:5173) allowed to call the gateway from a browser, repeatable (env: one per line); none by default',
  },
  {
    flag: 'no-e2ee',
    env: 'TEEML_GATEWAY_NO_E2EE',
    type: 'boolean',
    help: 'do not encrypt to the attested key even when the provider supports E2EE',
  },
  {
    flag: 'no-tls-binding',
    env: 'TEEML_GATEWAY_NO_TLS_BINDING',
    type: 'boolean',
    help: 'https providers: do not ask for the attested TLS key or pin connections to it (ordinary CA-checked https)',
  },
  {
    flag: 'release-unverified-streams',
    env: 'TEEML_GATEWAY_RELEASE_UNVERIFIED_STREAMS',
    type: 'boolean',
    help: 'stream events as they arrive even without attested TLS (marked pending-unauthenticated); default: held until verified',
  },
  {
    flag: 'max-held-bytes',
    env: 'TEEML_GATEWAY_MAX_HELD_BYTES',
    type: 'string',
    arg: '<bytes>',
    help: 'answer bytes held for verification across all requests at once (default 268435456); beyond it 429 gateway_busy',
  },
  {
    flag: 'zg-rpc',
    env: 'TEEML_GATEWAY_ZG_RPC',
    type: 'string',
    arg: '<url>',
    help: '0G mode (instead of --provider): the 0G chain RPC; the wallet key comes from ZG_PRIVATE_KEY or --zg-private-key-file',
  },
  {
    flag: 'zg-provider',
    env: 'TEEML_GATEWAY_ZG_PROVIDER',
    type: 'string',
    arg: '<address|model>',
    help: '0G mode: a provider address, or a model name (the cheapest acknowledged TeeML provider serving it)',
  },
  {
    flag: 'zg-private-key-file',
    env: 'TEEML_GATEWAY_ZG_PRIVATE_KEY_FILE',
    type: 'string',
    arg: '<file>',
    help: '0G mode: a file holding the wallet key (else ZG_PRIVATE_KEY); never a key on the command line',
  },
  {
    flag: 'zg-ledger-address',
    env: 'TEEML_GATEWAY_ZG_LEDGER_ADDRESS',
    type: 'string',
    arg: '<address>',
    help: "0G mode: the LedgerManager contract (default: the SDK's address for the chain)",
  },
  {
    flag: 'zg-inference-address',
    env: 'TEEML_GATEWAY_ZG_INFERENCE_ADDRESS',
    type: 'string',
    arg: '<address>',
    help: "0G mode: the InferenceServing contract (default: the SDK's address for the chain)",
  },
  {
    flag: 'zg-create-ledger',
    env: 'TEEML_GATEWAY_ZG_CREATE_LEDGER',
    type: 'string',
    arg: '<amount>',
    help: "0G mode: create the wallet's ledger with this many 0G (at least 3) if it has none",
  },
] as const;

type OptionFlag = (typeof GATEWAY_OPTIONS)[number]['flag'];

export const GATEWAY_USAGE = `Usage: teeml-sidecar gateway --provider <url> [options]
       teeml-sidecar gateway --zg-rpc <url> --zg-provider <address|model> [options]   (0G mode; ZG_PRIVATE_KEY)

A local OpenAI endpoint (default http://127.0.0.1:8090/v1) that attests the provider with a fresh
nonce at start and every --reattest-interval, and verifies every answer's signature against the
attested key before releasing it. Answers carry X-TeeML-Verification: verified | failed: <check id>
(streams: in the trailer; a failed stream ends with an error event instead of [DONE]).
GET / is the status page. Each option can also be set in the environment (shown in brackets).

Options:
${GATEWAY_OPTIONS.map((o) => `${`  --${o.flag}${'arg' in o ? ` ${o.arg}` : ''}`.padEnd(33)} ${o.help} [${o.env}]`).join('\n')}
  -h, --help                      this text
`;

/** The provider could not be reached or set up (exit 1, not a usage error). */
class StartError extends Error {
  override readonly name = 'StartError';
}

/** `90s`, `10m`, `1h`, `500ms`, or plain seconds. */
export const parseDuration = (value: string): number => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (m === null) throw new UsageError('--reattest-interval: expected a duration like 90s, 10m or 1h');
  const n = Number(m[1]);
  const ms = n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  if (ms < 1000 || ms > 7 * 24 * 3_600_000)
    throw new UsageError('--reattest-interval: between 1s and 7 days');
  return Math.round(ms);
};

/** `K: V` → [k, V]; a malformed header names the flag, not the value (it may hold a secret). */
export const parseHeader = (value: string): [string, string] => {
  const at = value.indexOf(':');
  const name = at > 0 ? value.slice(0, at).trim().toLowerCase() : '';
  if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) throw new UsageError("--header: expected 'Name: value'");
  const v = value.slice(at + 1).trim();
  if (/[\r\n\0]/.test(v)) throw new UsageError('--header: the value holds a line break');
  return [name, v];
};

export interface GatewayCommandDeps {
  readFile?: (path: string) => Promise<Uint8Array>;
  fetch?: typeof globalThis.fetch;
  /** Stops the gateway (default: SIGINT or SIGTERM). */
  signal?: AbortSignal;
  /** Called once it listens (tests read the URL). */
  onListening?: (gateway: Gateway) => void;
  /** Log destination (default stdout). */
  logDestination?: Writable;
  /** Builds the link for modes other than direct (default: the 0G mode when a --zg-* option is set). */
  linkFor?: (values: Record<string, unknown>) => Promise<ProviderLink | undefined>;
  /** The environment 0G mode reads its wallet key from (ZG_PRIVATE_KEY); gatewayCommand passes its own. */
  env?: Record<string, string | undefined>;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);

/** Flags first, then the environment: the resolved value of every option. */
const resolve = (argv: string[], env: Record<string, string | undefined>) => {
  const options = Object.fromEntries(
    GATEWAY_OPTIONS.map((o) => [o.flag, { type: o.type, ...('multiple' in o ? { multiple: true } : {}) }]),
  ) as Record<OptionFlag, { type: 'string' | 'boolean'; multiple?: true }>;
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: false,
    strict: true,
    options: { ...options, help: { type: 'boolean', short: 'h' } },
  });
  const out: Record<string, unknown> = { help: values.help === true };
  for (const o of GATEWAY_OPTIONS) {
    const given = (values as Record<string, unknown>)[o.flag];
    const fromEnv = env[o.env];
    if (given !== undefined) out[o.flag] = given;
    else if (fromEnv !== undefined && fromEnv !== '') {
      if (o.type === 'boolean') out[o.flag] = TRUE.has(fromEnv.toLowerCase());
      else if ('multiple' in o) out[o.flag] = fromEnv.split('\n').filter((l) => l.trim() !== '');
      else out[o.flag] = fromEnv;
    }
  }
  return { values: out, positionals };
};

const str = (values: Record<string, unknown>, flag: OptionFlag): string | undefined =>
  typeof values[flag] === 'string' ? (values[flag] as string) : undefined;

/**
 * 0G mode (issue 18): any --zg-* option selects it. The flags are checked and the wallet key read
 * (ZG_PRIVATE_KEY or --zg-private-key-file) before anything touches the chain; a provider that
 * cannot be set up (RPC down, contracts not found, no such provider) stops the start with exit 1.
 */
const zgLinkFor = async (
  values: Record<string, unknown>,
  deps: GatewayCommandDeps,
): Promise<ProviderLink | undefined> => {
  const pick = (flag: OptionFlag, key: keyof ZgFlags) => {
    const value = str(values, flag);
    return value === undefined ? {} : { [key]: value };
  };
  const flags: ZgFlags = {
    ...pick('zg-rpc', 'rpc'),
    ...pick('zg-provider', 'provider'),
    ...pick('zg-private-key-file', 'privateKeyFile'),
    ...pick('zg-ledger-address', 'ledgerAddress'),
    ...pick('zg-inference-address', 'inferenceAddress'),
    ...pick('zg-create-ledger', 'createLedger'),
  };
  if (!isZgMode(flags)) return undefined;
  if (str(values, 'provider') !== undefined)
    throw new UsageError('--provider and the --zg-* options are two modes: give one of them');
  if (str(values, 'api-key') !== undefined || values['header'] !== undefined)
    throw new UsageError('--api-key and --header apply to --provider; 0G mode authenticates with the SDK');
  const read = deps.readFile ?? (async (path: string) => new Uint8Array(await readFile(path)));
  let options: Awaited<ReturnType<typeof zgLinkOptionsFromFlags>>;
  try {
    options = await zgLinkOptionsFromFlags(flags, deps.env ?? {}, async (path) =>
      new TextDecoder().decode(await read(path)),
    );
  } catch (error) {
    if (error instanceof SidecarError && error.status === 400) throw new UsageError(error.message);
    throw error;
  }
  try {
    return await createZgLink({ ...options, ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }) });
  } catch (error) {
    if (error instanceof SidecarError) throw new StartError(error.message);
    throw error;
  }
};

export const buildGatewayOptions = async (
  given: Record<string, unknown>,
  deps: GatewayCommandDeps,
): Promise<Omit<GatewayOptions, 'logger'> & { receiptsPath?: string }> => {
  const read = deps.readFile ?? (async (path: string) => new Uint8Array(await readFile(path)));
  const values = await withTokenFiles(given, read);
  const overrides = {
    allowSimulated: values['allow-simulated'] === true,
    acceptBrokerQuote: values['accept-broker-quote'] === true,
  };
  let policy: Policy;
  const policyPath = str(values, 'policy');
  if (policyPath === undefined) policy = defaultPolicy(overrides);
  else {
    let bytes: Uint8Array;
    try {
      bytes = await read(policyPath);
    } catch {
      throw new UsageError('--policy: cannot read the file');
    }
    try {
      policy = parsePolicy(bytes, overrides);
    } catch (error) {
      throw new UsageError(`--policy: ${(error as PolicyError).message}`);
    }
  }
  if (values['release-unverified-streams'] === true) policy = { ...policy, releaseUnverifiedStreams: true };
  const heldText = str(values, 'max-held-bytes');
  if (heldText !== undefined && !/^[1-9]\d{0,15}$/.test(heldText))
    throw new UsageError('--max-held-bytes: expected a positive number of bytes');
  const onFailure = str(values, 'on-failure') ?? 'refuse';
  if (onFailure !== 'refuse' && onFailure !== 'warn')
    throw new UsageError('--on-failure: expected refuse or warn');
  const host = str(values, 'host') ?? '127.0.0.1';
  const portText = str(values, 'port') ?? '8090';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError('--port: expected 0-65535');
  const authToken = str(values, 'auth-token');
  const loopback = host === 'localhost' || host === '::1' || host.startsWith('127.');
  if (!loopback && authToken === undefined)
    throw new UsageError('--auth-token is required when the gateway listens off loopback (--host)');
  const headers = Object.fromEntries(((values['header'] as string[] | undefined) ?? []).map(parseHeader));
  const apiKey = str(values, 'api-key');

  let link = await (deps.linkFor ?? ((v: Record<string, unknown>) => zgLinkFor(v, deps)))(values);
  if (link === undefined) {
    const provider = str(values, 'provider');
    if (provider === undefined)
      throw new UsageError('--provider <url> is required (or, on 0G, --zg-rpc and --zg-provider)');
    let url: URL;
    try {
      url = new URL(provider);
    } catch {
      throw new UsageError('--provider: not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new UsageError('--provider: expected http(s)');
    link = new DirectLink({
      provider,
      headers,
      ...(apiKey === undefined ? {} : { apiKey }),
      ...(values['no-tls-binding'] === true ? { tlsBinding: false } : {}),
      ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
    });
  }
  const receiptsPath = str(values, 'receipts');
  return {
    link,
    policy,
    host,
    port,
    onFailure,
    reattestIntervalMs: parseDuration(str(values, 'reattest-interval') ?? '10m'),
    ...(heldText === undefined ? {} : { maxHeldBytes: Number(heldText) }),
    ...(authToken === undefined ? {} : { authToken }),
    ...browserFlagsOf(values),
    e2ee: {
      mode: values['no-e2ee'] === true ? 'off' : 'auto',
      client: nearE2eeClient,
      // A 0G broker that signs does its own E2EE, not ours (issue 21, item 3); the policy may still say.
      required: (link as { layout?: unknown }).layout !== 'broker-signed',
    },
    ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
    ...(receiptsPath === undefined ? {} : { receiptsPath }),
  };
};

/** The provider as the start-up line names it: its URL (no credentials or query), or the 0G provider. */
const attestTarget = (values: Record<string, unknown>): string => {
  const provider = str(values, 'provider');
  if (provider === undefined) return `0G provider ${str(values, 'zg-provider') ?? ''}`.trim();
  const url = new URL(provider);
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
};

/** What to do when the first attestation failed, by its failed check. */
const ATTEST_HINTS: Record<string, string> = {
  'report.fetch': 'is a teeml-sidecar serving at --provider? (base URL, with or without /v1)',
  'report.simulated': 'a simulated provider (development only): add --allow-simulated to accept it',
  'tdx.quote':
    'a simulated quote needs --allow-simulated; a TCB status other than UpToDate, the policy (acceptTcb)',
};

/** One line per check of the first attestation, then the listening line with the verdict and a hint. */
const attestationLines = (gateway: Gateway): string => {
  const a = gateway.attestor.current;
  const lines = (a?.checks ?? []).map(
    (c) => `  ${`${c.status.toUpperCase()}${c.simulated ? '*' : ''}`.padEnd(5)} ${c.id}: ${c.detail}`,
  );
  const failed = a?.checks.find((c) => c.id === a.failedCheck);
  const hint = a?.failedCheck === undefined ? undefined : ATTEST_HINTS[a.failedCheck];
  lines.push(
    `teeml-sidecar gateway listening on ${gateway.url}/v1 (status page ${gateway.url}/); provider ${
      a?.ok
        ? `attested, signing address ${a.signer?.address}`
        : `NOT attested: ${a?.failedCheck}${failed === undefined ? '' : `: ${failed.detail}`} (requests get 503 until an attestation passes)`
    }`,
  );
  if (hint !== undefined) lines.push(`  hint: ${hint}`);
  return `${lines.join('\n')}\n`;
};

/**
 * `teeml-sidecar gateway`: runs until SIGINT/SIGTERM (or `deps.signal`). 0 stopped cleanly,
 * 1 could not start, 2 usage error.
 */
export const gatewayCommand = async (
  argv: string[],
  env: Record<string, string | undefined>,
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
  deps: GatewayCommandDeps = {},
): Promise<number> => {
  let built: Awaited<ReturnType<typeof buildGatewayOptions>>;
  let values: Record<string, unknown>;
  try {
    ({ values } = resolve(argv, env));
    if (values['help'] === true) {
      stdout.write(GATEWAY_USAGE);
      return 0;
    }
    for (const warning of argvTokenWarnings(argv)) stderr.write(warning);
    built = await buildGatewayOptions(values, { env, ...deps });
  } catch (caught) {
    if (caught instanceof StartError) {
      stderr.write(`teeml-sidecar gateway: cannot start: ${caught.message}\n`);
      return 1;
    }
    const error = explainParseError(caught, [...GATEWAY_OPTIONS.map((o) => o.flag), 'help']);
    if (!(error instanceof UsageError)) throw error;
    stderr.write(
      `teeml-sidecar gateway: ${error.message}\n\nUsage: ${GATEWAY_USAGE.split('\n')[0]?.slice(7)} (--help for all)\n`,
    );
    return 2;
  }
  const logger = createLogger(env['TEEML_GATEWAY_LOG_LEVEL'] ?? 'info', deps.logDestination);
  const { receiptsPath, ...options } = built;
  stdout.write(`teeml-sidecar gateway: attesting ${attestTarget(values)} with a fresh nonce…\n`);
  let gateway: Gateway;
  try {
    gateway = await startGateway({
      ...options,
      logger,
      ...(receiptsPath === undefined
        ? {}
        : { receipts: { sink: await fileReceiptSink(receiptsPath), label: receiptsPath } }),
    });
  } catch (error) {
    stderr.write(`teeml-sidecar gateway: cannot start: ${(error as Error).message}\n`);
    return 1;
  }
  stdout.write(attestationLines(gateway));
  deps.onListening?.(gateway);
  await new Promise<void>((resolveStop) => {
    if (deps.signal !== undefined) {
      if (deps.signal.aborted) resolveStop();
      deps.signal.addEventListener('abort', () => resolveStop(), { once: true });
      return;
    }
    process.once('SIGINT', () => resolveStop());
    process.once('SIGTERM', () => resolveStop());
  });
  await gateway.close();
  return 0;
};
