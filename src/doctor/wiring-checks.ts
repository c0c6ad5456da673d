import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createServer } from 'node:net';
import { RedisSignatureStore } from '../signatures/index.js';
import { type CheckOutcome, type DoctorCheck, fail, pass, skip, warn } from './check.js';
import type { DoctorContext } from './context.js';
import { describeError, errorCode, showUrl } from './describe-error.js';

/** A certificate that expires sooner than this is a warning. */
const EXPIRY_WARNING_MS = 14 * 86_400_000;
const MAX_MODELS_BYTES = 4 * 1024 * 1024;

/**
 * `wiring.upstream`, `wiring.redis`, `wiring.tls`, `wiring.port`: what the sidecar talks to and
 * listens on.
 */
export const wiringChecks = (ctx: DoctorContext): DoctorCheck[] => {
  const { config, deps } = ctx;

  const upstream: DoctorCheck = {
    id: 'wiring.upstream',
    timeoutMs: ctx.timeout('wiring.upstream', 10_000),
    failHint:
      'is vLLM up, and listening where the sidecar reaches it (UPSTREAM_URL, from inside this container)?',
    async run(signal) {
      if (config.UPSTREAM_URL === undefined) {
        return fail(
          'UPSTREAM_URL is not set: the built-in demo upstream would answer every request',
          'set UPSTREAM_URL to vLLM as the sidecar reaches it, e.g. http://vllm:8000',
        );
      }
      // Same rule as the proxy (proxy/upstream.ts): OpenAI paths go after /v1, added when missing.
      const url = new URL(config.UPSTREAM_URL);
      const path = url.pathname.replace(/\/+$/, '');
      url.pathname = `${path.endsWith('/v1') ? path : `${path}/v1`}/models`;
      const shown = showUrl(url.href);
      const headers: Record<string, string> = { accept: 'application/json' };
      // fetch refuses URLs with credentials; node:http (the proxy) sends them as Basic auth.
      if (url.username !== '' || url.password !== '') {
        const basic = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
        headers['authorization'] = `Basic ${Buffer.from(basic).toString('base64')}`;
        url.username = '';
        url.password = '';
      }
      if (config.UPSTREAM_API_KEY !== undefined)
        headers['authorization'] = `Bearer ${config.UPSTREAM_API_KEY}`;
      let response: Response;
      try {
        response = await deps.fetch(url, { headers, signal });
      } catch (error) {
        if (signal.aborted) throw error;
        return fail(`GET ${shown}: ${describeError(error)}`, upstream.failHint);
      }
      const text = await readText(response, MAX_MODELS_BYTES);
      if (response.status === 401 || response.status === 403) {
        return fail(
          `GET ${shown}: HTTP ${response.status}`,
          'set UPSTREAM_API_KEY to the key vLLM was started with (--api-key)',
        );
      }
      if (response.status !== 200) return fail(`GET ${shown}: HTTP ${response.status}`, upstream.failHint);
      const models = modelNames(text);
      if (models === undefined)
        return fail(
          `GET ${shown}: not an OpenAI model list`,
          'UPSTREAM_URL must point at an OpenAI-compatible server (vLLM)',
        );
      if (models.length === 0)
        return warn(`GET ${shown}: no models served`, 'vLLM answers but serves no model yet');
      const names = models.length > 10 ? [...models.slice(0, 10), '…'] : models;
      return pass(
        `GET ${shown}: ${models.length} model${models.length === 1 ? '' : 's'}: ${names.join(', ')}`,
      );
    },
  };

  const redis: DoctorCheck = {
    id: 'wiring.redis',
    timeoutMs: ctx.timeout('wiring.redis', Math.max(config.REDIS_COMMAND_TIMEOUT_MS * 8, 3000)),
    failHint:
      'Redis did not answer PING in time: check REDIS_URL (host, port, TLS) and that Redis accepts this CVM',
    async run(signal) {
      if (config.REDIS_URL === undefined)
        return skip("REDIS_URL not set: signatures stay in this replica's memory");
      const where = redisWhere(config.REDIS_URL);
      let firstError: ((error: Error) => void) | undefined;
      const store = new RedisSignatureStore({
        url: config.REDIS_URL,
        ttlMs: config.SIGNATURE_TTL_SECONDS * 1000,
        keyPrefix: config.REDIS_KEY_PREFIX,
        commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
        // node-redis messages name host:port, never the password.
        onError: (error) => firstError?.(error),
      });
      signal.addEventListener('abort', () => void store.close(0));
      try {
        // Connected, or the first connection error (the client would retry forever).
        await new Promise<void>((resolve, reject) => {
          firstError = reject;
          store.onReady(resolve);
          void store.connect();
        });
        await store.ping();
        return pass(`${where}: PING answered`);
      } catch (error) {
        return fail(`${where}: ${describeError(error)}`, redis.failHint);
      } finally {
        await store.close();
      }
    },
  };

  const tls: DoctorCheck = {
    id: 'wiring.tls',
    timeoutMs: ctx.timeout('wiring.tls', 5000),
    failHint: 'the certificate or key file could not be read',
    run: () => checkTls(ctx),
  };

  const port: DoctorCheck = {
    id: 'wiring.port',
    timeoutMs: ctx.timeout('wiring.port', 5000),
    failHint: 'the port could not be probed',
    async run() {
      const where = `${config.HOST}:${config.PORT}`;
      const error = await tryListen(config.HOST, config.PORT);
      if (error === undefined) return pass(`${where} is free`);
      const code = errorCode(error);
      if (code === 'EADDRINUSE') {
        return fail(
          `${where} is in use`,
          'another process listens there (a sidecar already running?); stop it or set PORT',
        );
      }
      if (code === 'EACCES')
        return fail(
          `${where}: permission denied`,
          'ports below 1024 need root or CAP_NET_BIND_SERVICE; set PORT ≥ 1024',
        );
      if (code === 'EADDRNOTAVAIL')
        return fail(
          `${where}: no such local address`,
          'HOST must be an address of this machine (0.0.0.0 for all)',
        );
      return fail(`${where}: ${describeError(error)}`, 'check HOST and PORT');
    },
  };

  return [upstream, redis, tls, port];
};

const readText = async (response: Response, max: number): Promise<string> => {
  const reader = response.body?.getReader();
  if (reader === undefined) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel();
      return '';
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
};

/** `{"data":[{"id":…}]}` → ids; undefined when it is not a model list. Names are public model ids. */
const modelNames = (text: string): string[] | undefined => {
  try {
    const json = JSON.parse(text) as { data?: unknown };
    if (!Array.isArray(json.data)) return undefined;
    return (
      json.data
        .map((m: unknown) =>
          typeof m === 'object' && m !== null && 'id' in m && typeof m.id === 'string' ? m.id : undefined,
        )
        .filter((id): id is string => id !== undefined)
        // Printed to a terminal: printable ASCII only, bounded.
        .map((id) => id.slice(0, 200).replace(/[^\x20-\x7e]/g, '?'))
    );
  } catch {
    return undefined;
  }
};

/** `redis://user:pass@host:6379/0` → `redis://host:6379` (the URL may hold a password). */
const redisWhere = (url: string): string => {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return 'REDIS_URL';
  }
};

const tryListen = (host: string, port: number): Promise<Error | undefined> =>
  new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error) => resolve(error));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });

/**
 * `wiring.tls`: the PEM certificate parses, is inside its validity window, and matches the private
 * key. The paths are `--tls-cert` / `--tls-key`, else TLS_CERT_PATH / TLS_KEY_PATH (docs/tls.md).
 * With TLS_CERT_PATH alone (TLS terminates elsewhere in the CVM) only the certificate is checked.
 * Keys made in memory or fetched from Dstack / Tapp (TLS_KEY_SOURCE) are checked by the sidecar at
 * start. Nothing of the key is printed; only the certificate's subject, issuer and dates.
 */
const checkTls = async (ctx: DoctorContext): Promise<CheckOutcome> => {
  const { inputs, deps, config } = ctx;
  const fromFlags = inputs.tlsCertPath !== undefined || inputs.tlsKeyPath !== undefined;
  const certPath = fromFlags ? inputs.tlsCertPath : config.TLS_CERT_PATH;
  const keyPath = fromFlags ? inputs.tlsKeyPath : config.TLS_KEY_PATH;
  const source = config.TLS_KEY_SOURCE;
  if (!fromFlags && source !== undefined && source !== 'file') {
    return skip(`TLS_KEY_SOURCE=${source}: the key is made or fetched at start, and checked there`);
  }
  if (certPath === undefined && keyPath === undefined)
    return skip('no TLS certificate configured: the sidecar serves plain HTTP');
  const bindOnly = !fromFlags && certPath !== undefined && keyPath === undefined;
  if (!bindOnly && (certPath === undefined || keyPath === undefined)) {
    return fail(
      'only one of the TLS certificate and key is configured',
      'set both the certificate and the key path',
    );
  }
  const certFile = certPath as string;
  let certPem: Uint8Array;
  try {
    certPem = await deps.readFile(certFile);
  } catch (error) {
    return fail(
      `certificate ${certFile}: ${describeError(error)}`,
      'the sidecar must be able to read the certificate file',
    );
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(certPem));
  } catch {
    return fail(
      `certificate ${certFile}: not a PEM certificate`,
      'give the PEM certificate (leaf first when a chain)',
    );
  }
  const subject = cert.subject.split('\n').join(', ');
  const seen = `certificate ${certFile} (${subject}, valid ${cert.validFrom} to ${cert.validTo})`;
  if (keyPath !== undefined) {
    let keyPem: Uint8Array;
    try {
      keyPem = await deps.readFile(keyPath);
    } catch (error) {
      return fail(`key ${keyPath}: ${describeError(error)}`, 'the sidecar must be able to read the key file');
    }
    let key: ReturnType<typeof createPrivateKey>;
    try {
      key = createPrivateKey(Buffer.from(keyPem));
    } catch {
      // Never echo the key file's content or the parser's message (it may quote it).
      return fail(
        `key ${keyPath}: not a readable unencrypted PEM private key`,
        'give the PEM private key (PKCS#8, SEC1 or PKCS#1), unencrypted',
      );
    } finally {
      keyPem.fill(0);
    }
    if (!cert.checkPrivateKey(key)) {
      return fail(
        `${seen} does not match the key ${keyPath}`,
        'the key file must hold the private key of this certificate',
      );
    }
  }
  const now = deps.now().getTime();
  if (now < Date.parse(cert.validFrom))
    return fail(`${seen}: not valid yet`, 'check the clock, or issue a certificate valid now');
  const expires = Date.parse(cert.validTo);
  if (now > expires) return fail(`${seen}: expired`, 'renew the certificate');
  if (expires - now < EXPIRY_WARNING_MS)
    return warn(`${seen}: expires within 14 days`, 'renew the certificate soon');
  return pass(
    keyPath === undefined
      ? `${seen}; bound in reports, served by a TLS terminator elsewhere in the CVM (TLS_CERT_PATH alone)`
      : `${seen}, matches the key`,
  );
};
