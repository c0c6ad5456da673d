import type { ServerOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Config } from '../config/index.js';
import { DstackClient } from '../dstack/index.js';
import type { Logger } from '../log/index.js';
import { TappClient } from '../tapp/index.js';
import { TlsBinder } from './binder.js';
import { DstackTlsSource } from './dstack.js';
import { FileTlsSource } from './file.js';
import { GeneratedTlsSource } from './generate.js';
import type { TlsIdentity } from './identity.js';
import { TappTlsSource } from './tapp.js';
import type { TlsSource } from './tls-source.js';

/**
 * What the server is handed: TLS 1.2 and later (TLS 1.0/1.1 are deprecated, RFC 8996), HTTP/1.1
 * only, and no client certificates.
 */
export const httpsServerOptions = (identity: TlsIdentity): ServerOptions => {
  if (identity.key === undefined) throw new RangeError('"identity" has no key: it cannot be served');
  return {
    cert: identity.certificate,
    key: identity.key,
    minVersion: 'TLSv1.2',
    ALPNProtocols: ['http/1.1'],
    requestCert: false,
  };
};

/** The source configuration asks for; undefined when TLS is off. Platform clients come from config. */
export const createTlsSource = (config: Config): TlsSource | undefined => {
  switch (config.tlsMode) {
    case 'off':
      return undefined;
    case 'bind':
    case 'file':
      return new FileTlsSource({
        certPath: config.TLS_CERT_PATH as string,
        keyPath: config.TLS_KEY_PATH,
        pollIntervalMs: config.TLS_WATCH_INTERVAL_MS,
      });
    case 'generate':
      return new GeneratedTlsSource({ hostnames: config.TLS_HOSTNAMES });
    case 'dstack':
      return new DstackTlsSource({
        client: new DstackClient({ socketPath: config.DSTACK_SOCKET }),
        hostnames: config.TLS_HOSTNAMES,
      });
    case 'tapp':
      return new TappTlsSource({
        client: new TappClient({ endpoint: config.TAPP_ENDPOINT }),
        appId: config.TAPP_APP_ID as string,
      });
  }
};

/** A server whose certificate can be replaced for new connections (node:https Server). */
interface ReloadableServer {
  setSecureContext(options: ServerOptions): void;
  on(event: 'secureConnection', listener: (socket: TLSSocket) => void): unknown;
}

export interface TlsRuntime {
  readonly binder: TlsBinder;
  /** True: serve HTTPS with `serverOptions()`; false: serve HTTP, bind a certificate served elsewhere. */
  readonly terminates: boolean;
  serverOptions(): ServerOptions;
  /** Follows the source's changes: the binder and (when terminating) `server` get each new identity. */
  follow(server: ReloadableServer | undefined): void;
  close(): void;
}

/**
 * Loads the configured TLS identity once (any problem is a start-up error naming the variable) and
 * returns what the server and the report route need; undefined when TLS is off.
 */
export const startTls = async (
  config: Config,
  logger: Logger,
  source: TlsSource | undefined = createTlsSource(config),
): Promise<TlsRuntime | undefined> => {
  if (source === undefined) return undefined;
  const identity = await source.load();
  const binder = new TlsBinder(identity, source.terminates);
  logger.info(
    {
      tls: source.kind,
      terminates: source.terminates,
      tlsCertFingerprint: identity.fingerprint,
      notAfter: new Date(identity.leaf.validTo).toISOString(),
      subject: identity.leaf.subject,
    },
    source.terminates
      ? 'TLS: serving HTTPS; reports bind this certificate on request'
      : 'TLS: terminated elsewhere in the CVM; reports bind this certificate on request',
  );
  let stop: (() => void) | undefined;
  return {
    binder,
    terminates: source.terminates,
    serverOptions: () => httpsServerOptions(binder.identity),
    follow: (server) => {
      server?.on('secureConnection', (socket) => binder.noteConnection(socket));
      stop = source.watch?.(
        (next) => {
          if (server !== undefined && source.terminates) server.setSecureContext(httpsServerOptions(next));
          binder.update(next);
          logger.info(
            {
              tls: source.kind,
              tlsCertFingerprint: next.fingerprint,
              notAfter: new Date(next.leaf.validTo).toISOString(),
            },
            'TLS certificate reloaded',
          );
        },
        (error) => {
          logger.warn(
            { tls: source.kind, reason: error.message, tlsCertFingerprint: binder.identity.fingerprint },
            'TLS certificate change not used; keeping the previous certificate',
          );
        },
      );
    },
    close: () => {
      stop?.();
      source.close?.();
    },
  };
};
