import { z } from 'zod';
import { DEFAULT_DSTACK_SOCKET } from '../dstack/index.js';
import { DEFAULT_NVML_LIBRARY_PATH, NRAS_BASE_URL } from '../gpu/index.js';
import {
  DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  DEFAULT_REDIS_KEY_PREFIX,
  MODEL_NAME_PATTERN,
  SIGNED_TEXT_FORMATS,
} from '../signatures/index.js';
import { DEFAULT_TAPP_ENDPOINT } from '../tapp/index.js';
import { DEFAULT_LIBTDX_ATTEST_PATH, DEFAULT_TSM_REPORT_ROOT } from '../tdx/index.js';

/**
 * The sidecar's configuration: read from the environment once, validated once, frozen, and handed to
 * everything else. No other module reads `process.env` (docs/architecture.md, hidden global state).
 *
 * Every name below is part of the product's interface (compose files and operators set them) and is
 * documented in the README's configuration table; a test keeps the two in step.
 *
 * A default that is a fact about a mechanism (a socket path, a library name, the NRAS URL, the Redis
 * key prefix) is owned by the module that implements it and imported here, so library users (the
 * verifier CLI, tests, embedders) and the sidecar get the same value; no feature folder imports
 * config. Defaults that are sidecar policy (limits, timeouts, TTLs) are stated here only.
 */
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === '' ? undefined : v));
const token = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === '' ? undefined : v))
  .refine((v) => v === undefined || v.length >= 16, 'must be at least 16 characters');
const url = z.url({ protocol: /^https?$/ });
/** RFC 1123 host names (optionally one leading wildcard label), IPv4, or IPv6 without an embedded IPv4. */
const HOSTNAME =
  /^(?:\*\.)?(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6 = /^[0-9A-Fa-f:]+$/;
const hostnames = z
  .string()
  .transform((v) =>
    v
      .split(',')
      .map((h) => h.trim())
      .filter((h) => h !== ''),
  )
  .refine((list) => list.length > 0, 'must name at least one host')
  .refine(
    (list) => list.every((h) => HOSTNAME.test(h) || (h.includes(':') && IPV6.test(h))),
    'expected comma-separated host names or IP addresses',
  );

/**
 * Served model names: what vLLM's `--served-model-name` lists (comma-separated). A name is 1–256
 * characters without whitespace or control characters (it goes into the signed text and the report).
 */
const modelNames = z
  .string()
  .transform((v) =>
    v
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m !== ''),
  )
  .refine((list) => list.length > 0, 'must name at least one model')
  .refine(
    (list) => list.every((m) => MODEL_NAME_PATTERN.test(m)),
    'expected comma-separated model names (1-256 characters each, no whitespace or control characters)',
  );

export const envSchema = z.object({
  HOST: z.string().min(1).default('0.0.0.0'),
  /** vLLM listens on 8000; the sidecar must not collide with it. */
  PORT: int(0, 65535).default(8088),
  /** Unset: the built-in demo upstream starts on loopback and every response says it is a demo. */
  UPSTREAM_URL: url.optional(),
  UPSTREAM_API_KEY: optionalString,
  UPSTREAM_TIMEOUT_MS: int(100, 3_600_000).default(600_000),
  /**
   * Longest a client may take none of the answer bytes waiting for it (a reader that stopped); then
   * its connection closes and its slot at the model server is freed.
   */
  CLIENT_STALL_TIMEOUT_MS: int(100, 3_600_000).default(60_000),
  MAX_BODY_BYTES: int(1024, 512 * 1024 * 1024).default(10 * 1024 * 1024),
  /** Largest non-streaming upstream answer the sidecar buffers to sign. */
  MAX_UPSTREAM_BODY_BYTES: int(1024, 1024 * 1024 * 1024).default(64 * 1024 * 1024),
  /**
   * The served model names (docs/protocol.md, Model identity). Set: the report carries `model_name`,
   * requests for another model are 404 `model_not_found` and answers naming another model are never
   * signed. Unset: no model check (the sidecar serves whatever the upstream serves).
   */
  MODEL_NAME: modelNames.optional(),
  /**
   * What is signed: `hashes` = `sha256(request):sha256(response)` (the 0G format), `model` =
   * `model:sha256(request):sha256(response)` (NEAR AI's inference-proxy since 2026; needs MODEL_NAME).
   */
  SIGNED_TEXT_FORMAT: z.enum(SIGNED_TEXT_FORMATS).default('hashes'),
  /**
   * vLLM's prefix cache, partitioned per caller (docs/protocol.md, Cache salt): `per-user` sets the
   * upstream request's `cache_salt` to a keyed hash of the caller's identity; `off` leaves it alone.
   */
  CACHE_SALT: z.enum(['off', 'per-user']).default('off'),

  KEY_SOURCE: z.enum(['ephemeral', 'dstack', 'tapp']).default('ephemeral'),
  DSTACK_KEY_PATH: z.string().min(1).default('teeml-sidecar/signing'),
  TEE_PROVIDER: z
    .enum(['simulated', 'dstack', 'configfs-tsm', 'libtdx', 'tapp', 'auto'])
    .default('simulated'),
  /** Only with TEE_PROVIDER=auto: fall back to the simulated provider when no TEE is found. */
  TEE_AUTO_ALLOW_SIMULATED: bool.default(false),
  DSTACK_SOCKET: z.string().min(1).default(DEFAULT_DSTACK_SOCKET),
  TSM_REPORT_ROOT: z.string().min(1).default(DEFAULT_TSM_REPORT_ROOT),
  LIBTDX_ATTEST_PATH: z.string().min(1).default(DEFAULT_LIBTDX_ATTEST_PATH),
  TAPP_ENDPOINT: z.string().min(1).default(DEFAULT_TAPP_ENDPOINT),
  TAPP_APP_ID: optionalString,

  GPU_EVIDENCE: z.enum(['simulated', 'nvml', 'http', 'none', 'fixture']).default('simulated'),
  NVML_LIBRARY_PATH: z.string().min(1).default(DEFAULT_NVML_LIBRARY_PATH),
  GPU_EVIDENCE_URL: url.optional(),
  GPU_EVIDENCE_TIMEOUT_MS: int(100, 600_000).default(30_000),
  GPU_FIXTURE_PATH: optionalString,
  NRAS_URL: url.default(NRAS_BASE_URL),
  /** At start, submit our own GPU evidence to NRAS and refuse to serve if it is rejected. */
  NRAS_SELF_CHECK: bool.default(false),

  /**
   * Attested TLS (docs/tls.md). TLS_CERT_PATH + TLS_KEY_PATH: the sidecar serves HTTPS with these PEM
   * files and reloads them when they change. TLS_CERT_PATH alone: TLS terminates elsewhere in the CVM
   * (e.g. nginx); the sidecar serves HTTP and binds that certificate. TLS_KEY_SOURCE picks another
   * origin for the key. Reports bind the certificate only when asked (`include_tls_fingerprint=true`).
   */
  TLS_CERT_PATH: optionalString,
  TLS_KEY_PATH: optionalString,
  TLS_KEY_SOURCE: z.enum(['file', 'generate', 'dstack', 'tapp']).optional(),
  /** Names in the generated (or Dstack-issued) certificate. */
  TLS_HOSTNAMES: hostnames.default(['localhost']),
  /** How often TLS_CERT_PATH / TLS_KEY_PATH are checked for a renewal. */
  TLS_WATCH_INTERVAL_MS: int(100, 3_600_000).default(5_000),

  REPORT_CACHE_TTL_SECONDS: int(1, 86_400).default(300),
  ATTESTATION_TIMEOUT_MS: int(100, 600_000).default(30_000),
  ATTESTATION_MAX_CONCURRENT: int(1, 64).default(2),
  ATTESTATION_MAX_QUEUE: int(0, 10_000).default(32),

  /** docs/protocol.md: records live at least 20 minutes (the 0G broker's own default). */
  SIGNATURE_TTL_SECONDS: int(1200, 7 * 86_400).default(1800),
  SIGNATURE_CAPACITY: int(1, 10_000_000).default(100_000),
  /**
   * Shared signature store: `redis://[user:password@]host:port[/db]` or `rediss://…`. Set it when
   * several replicas sit behind one load balancer or records must survive a restart; records are
   * then written to this replica's memory and to Redis. Unset: memory only. May hold a password, so
   * it is never logged.
   */
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  /** Key prefix, so one Redis can hold several deployments' records apart. */
  REDIS_KEY_PREFIX: z.string().min(1).max(256).default(DEFAULT_REDIS_KEY_PREFIX),
  /** Longest wait for one Redis command, reply included; beyond it Redis counts as down. */
  REDIS_COMMAND_TIMEOUT_MS: int(10, 60_000).default(DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
  /** Writes kept for replay while Redis is down (oldest dropped beyond it; they stay in memory here). */
  REDIS_RETRY_BUFFER: int(0, 10_000_000).default(10_000),

  /** Holders of this token may send X-Request-Hash (a gateway that re-serialized the user's body). */
  ADMIN_TOKEN: token,
  /** When set, proxy routes require `Authorization: Bearer <token>`. */
  AUTH_TOKEN: token,
  /**
   * Abuse limits (issue: reliability). Per-client limits key on the TCP peer address, or on the first
   * X-Forwarded-For hop when TRUST_PROXY_HEADERS=true. Behind the 0G broker every request comes from
   * the broker, so per-client proxy limits default to off (0).
   */
  RATE_LIMIT_PER_MINUTE: int(0, 1_000_000).default(0),
  /** Fresh attestation reports (with a nonce) per client per minute; they cost a quote and GPU evidence. */
  ATTESTATION_RATE_LIMIT_PER_MINUTE: int(0, 1_000_000).default(60),
  /** Proxied requests at the upstream across all clients; beyond it new ones get 429. */
  MAX_CONCURRENT_REQUESTS: int(1, 1_000_000).default(4096),
  /**
   * Request bodies being received at once, in all and per client: a slow upload holds one of these,
   * never a slot at the upstream. Beyond either, 429.
   */
  MAX_CONCURRENT_UPLOADS: int(1, 1_000_000).default(512),
  MAX_UPLOADS_PER_CLIENT: int(1, 1_000_000).default(64),
  /**
   * Signature lookups waiting for a response still being sent, in all and per client; beyond either
   * the lookup gets 429 at once. Lookups that find their record never wait and are not counted.
   */
  MAX_PENDING_LOOKUPS: int(1, 1_000_000).default(512),
  MAX_PENDING_LOOKUPS_PER_CLIENT: int(1, 1_000_000).default(64),
  /** Longest SSE line or event from the upstream, and most bytes it may send before its first event. */
  MAX_SSE_LINE_BYTES: int(1024, 256 * 1024 * 1024).default(8 * 1024 * 1024),
  TRUST_PROXY_HEADERS: bool.default(false),
  /** Largest request header block (Node's maxHeaderSize); beyond it Node answers 431. */
  MAX_HEADER_BYTES: int(1024, 1024 * 1024).default(16 * 1024),
  /** Slowloris: time allowed to receive a request's headers, and the whole request. */
  HEADERS_TIMEOUT_MS: int(1000, 600_000).default(15_000),
  REQUEST_TIMEOUT_MS: int(1000, 3_600_000).default(120_000),
  /** SIGTERM: how long in-flight requests and streams may take to finish before the process exits. */
  SHUTDOWN_GRACE_MS: int(0, 3_600_000).default(30_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = z.output<typeof envSchema>;

/**
 * Where the TLS identity comes from: `off` (no TLS, reports refuse `include_tls_fingerprint`),
 * `bind` (TLS_CERT_PATH only: bound, served by a terminator elsewhere), or the sidecar terminates
 * TLS with a key from `file`, `generate`, `dstack` or `tapp`.
 */
export type TlsMode = 'off' | 'bind' | 'file' | 'generate' | 'dstack' | 'tapp';

export interface Config extends Readonly<Env> {
  /** True when no UPSTREAM_URL is set and the built-in demo upstream serves completions. */
  readonly demoUpstream: boolean;
  readonly tlsMode: TlsMode;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Validates an environment. Throws a ConfigError naming every bad variable (never its value: it may
 * be a token).
 */
export const loadConfig = (env: Record<string, string | undefined>): Config => {
  const relevant: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') relevant[key] = value;
  }
  const parsed = envSchema.safeParse(relevant);
  if (!parsed.success) {
    const lines = parsed.error.issues.map(
      (issue) => `  ${issue.path.join('.') || '(env)'}: ${issue.message}`,
    );
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const cfg = parsed.data;
  if (cfg.GPU_EVIDENCE === 'http' && cfg.GPU_EVIDENCE_URL === undefined) {
    throw new ConfigError('invalid configuration:\n  GPU_EVIDENCE_URL: required when GPU_EVIDENCE=http');
  }
  if (cfg.GPU_EVIDENCE === 'fixture' && cfg.GPU_FIXTURE_PATH === undefined) {
    throw new ConfigError('invalid configuration:\n  GPU_FIXTURE_PATH: required when GPU_EVIDENCE=fixture');
  }
  if (cfg.TEE_PROVIDER !== 'simulated' && cfg.TEE_PROVIDER !== 'auto' && cfg.GPU_EVIDENCE === 'simulated') {
    throw new ConfigError(
      'invalid configuration:\n  GPU_EVIDENCE: "simulated" cannot be combined with a real TEE_PROVIDER; choose nvml, http or none',
    );
  }
  if ((cfg.TEE_PROVIDER === 'tapp' || cfg.KEY_SOURCE === 'tapp') && cfg.TAPP_APP_ID === undefined) {
    throw new ConfigError(
      'invalid configuration:\n  TAPP_APP_ID: required when TEE_PROVIDER=tapp or KEY_SOURCE=tapp',
    );
  }
  modelRules(cfg);
  return Object.freeze({ ...cfg, demoUpstream: cfg.UPSTREAM_URL === undefined, tlsMode: tlsModeOf(cfg) });
};

/**
 * MODEL_NAME with SIGNED_TEXT_FORMAT=model: the signed text names the model, so there must be one,
 * and NEAR AI's published verifiers split the text on ':' expecting 3 parts (docs/protocol.md), so a
 * name with ':' would make every signature unreadable to them.
 */
const modelRules = (cfg: Env): void => {
  if (cfg.SIGNED_TEXT_FORMAT !== 'model') return;
  if (cfg.MODEL_NAME === undefined) {
    throw new ConfigError('invalid configuration:\n  MODEL_NAME: required when SIGNED_TEXT_FORMAT=model');
  }
  if (cfg.MODEL_NAME.some((m) => m.includes(':'))) {
    throw new ConfigError(
      "invalid configuration:\n  MODEL_NAME: with SIGNED_TEXT_FORMAT=model a name may not contain ':' (verifiers split the signed text on ':')",
    );
  }
};

/** TLS variables across fields (each rule says what to change). */
const tlsModeOf = (cfg: Env): TlsMode => {
  const fail = (line: string): never => {
    throw new ConfigError(`invalid configuration:\n  ${line}`);
  };
  const cert = cfg.TLS_CERT_PATH !== undefined;
  const key = cfg.TLS_KEY_PATH !== undefined;
  const source = cfg.TLS_KEY_SOURCE;
  if (source === undefined || source === 'file') {
    if (key && !cert) fail('TLS_CERT_PATH: required with TLS_KEY_PATH');
    if (source === 'file' && !(cert && key))
      fail('TLS_KEY_PATH: TLS_KEY_SOURCE=file needs both TLS_CERT_PATH and TLS_KEY_PATH');
    return cert && key ? 'file' : cert ? 'bind' : 'off';
  }
  if (cert || key) {
    fail(
      `${cert ? 'TLS_CERT_PATH' : 'TLS_KEY_PATH'}: not used with TLS_KEY_SOURCE=${source} (the key and certificate come from ${source}); unset it`,
    );
  }
  if (source === 'tapp' && cfg.TAPP_APP_ID === undefined)
    fail('TAPP_APP_ID: required when TLS_KEY_SOURCE=tapp');
  return source;
};
