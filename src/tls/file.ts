import { type StatsListener, unwatchFile, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { TlsConfigError, type TlsIdentity, tlsIdentity } from './identity.js';
import type { TlsSource } from './tls-source.js';

export interface FileTlsSourceOptions {
  /** TLS_CERT_PATH: PEM chain, leaf first. */
  certPath: string;
  /** TLS_KEY_PATH: PEM private key. Absent: the certificate-only layout (TLS terminates elsewhere). */
  keyPath?: string | undefined;
  /** How often the files are polled for changes (TLS_WATCH_INTERVAL_MS). */
  pollIntervalMs: number;
  now?: () => Date;
}

const readPem = async (path: string, variable: string): Promise<string> => {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new TlsConfigError(
      `${variable}: cannot read ${path}${typeof code === 'string' ? ` (${code})` : ''}`,
    );
  }
};

/**
 * PEM files on disk: the operator's certificate (e.g. from an ACME client inside the CVM, renewed in
 * place). Files are polled with fs.watchFile rather than fs.watch because renewals usually swap a
 * symlink or rename a new file over the old one, which an inotify watch on the old inode misses;
 * stat polling follows the path. A change that does not give a valid pair (a renewal caught halfway,
 * an expired or mismatched certificate) is reported through `onError` and the old pair stays.
 */
export class FileTlsSource implements TlsSource {
  readonly kind: 'file' | 'bind';
  readonly terminates: boolean;
  private readonly now: () => Date;

  constructor(private readonly options: FileTlsSourceOptions) {
    this.terminates = options.keyPath !== undefined;
    this.kind = this.terminates ? 'file' : 'bind';
    this.now = options.now ?? (() => new Date());
  }

  async load(): Promise<TlsIdentity> {
    const { certPath, keyPath } = this.options;
    const [certificate, key] = await Promise.all([
      readPem(certPath, 'TLS_CERT_PATH'),
      keyPath === undefined ? undefined : readPem(keyPath, 'TLS_KEY_PATH'),
    ]);
    return tlsIdentity({
      source: this.kind,
      certificate,
      key,
      certificateOrigin: `TLS_CERT_PATH (${certPath})`,
      ...(keyPath === undefined ? {} : { keyOrigin: `TLS_KEY_PATH (${keyPath})` }),
      now: this.now(),
    });
  }

  watch(onIdentity: (identity: TlsIdentity) => void, onError: (error: Error) => void): () => void {
    const paths = [
      this.options.certPath,
      ...(this.options.keyPath === undefined ? [] : [this.options.keyPath]),
    ];
    let last: string | undefined;
    let loading = Promise.resolve();
    const listener: StatsListener = (current, previous) => {
      if (
        current.mtimeMs === previous.mtimeMs &&
        current.ino === previous.ino &&
        current.size === previous.size
      )
        return;
      // One load at a time, in order: a cert and a key changed in the same poll give two loads, and
      // the second (same pair) is ignored below.
      loading = loading.then(async () => {
        try {
          const identity = await this.load();
          const signature = `${identity.certificate}\0${identity.key ?? ''}`;
          if (signature === last) return;
          last = signature;
          onIdentity(identity);
        } catch (error) {
          onError(error as Error);
        }
      });
    };
    for (const path of paths)
      watchFile(path, { interval: this.options.pollIntervalMs, persistent: false }, listener);
    // The pair loaded at start is the baseline: only a different one is reported.
    void this.load()
      .then((identity) => {
        last ??= `${identity.certificate}\0${identity.key ?? ''}`;
      })
      .catch(() => undefined);
    return () => {
      for (const path of paths) unwatchFile(path, listener);
    };
  }
}
