import { type FSWatcher, unwatchFile, watch, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
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
 * place). Renewals usually swap a symlink or rename a new file over the old one, which a watch on
 * the old inode misses, so the *directories* holding the files are watched (fs.watch, immediate),
 * and the paths are also polled with fs.watchFile (stat follows the path; it is the fallback where
 * inotify is unavailable). A change that does not give a valid pair (a renewal caught halfway,
 * an expired or mismatched certificate) is reported through `onError` and the old pair stays.
 */
export class FileTlsSource implements TlsSource {
  readonly kind: 'file' | 'bind';
  readonly terminates: boolean;
  private readonly now: () => Date;
  /** Certificate and key text of the last successful load(). */
  private loaded: string | undefined;

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
    const identity = tlsIdentity({
      source: this.kind,
      certificate,
      key,
      certificateOrigin: `TLS_CERT_PATH (${certPath})`,
      ...(keyPath === undefined ? {} : { keyOrigin: `TLS_KEY_PATH (${keyPath})` }),
      now: this.now(),
    });
    this.loaded = `${identity.certificate}\0${identity.key ?? ''}`;
    return identity;
  }

  watch(onIdentity: (identity: TlsIdentity) => void, onError: (error: Error) => void): () => void {
    const paths = [
      this.options.certPath,
      ...(this.options.keyPath === undefined ? [] : [this.options.keyPath]),
    ];
    // The baseline is the pair the caller has (its last load()): only a different one is reported.
    let last = this.loaded;
    let loading = Promise.resolve();
    const changed = (): void => {
      // One load at a time, in order: a cert and a key changed together give several loads, and
      // the later ones (same pair) are ignored below.
      loading = loading.then(async () => {
        try {
          const identity = await this.load();
          const signature = this.loaded;
          if (signature === last) return;
          last = signature;
          onIdentity(identity);
        } catch (error) {
          onError(error as Error);
        }
      });
    };
    // fs.watchFile calls its listener only when a stat field changed (inode, size, mtime, ctime).
    for (const path of paths)
      watchFile(path, { interval: this.options.pollIntervalMs, persistent: false }, changed);
    const names = new Set(paths.map((p) => basename(p)));
    const watchers: FSWatcher[] = [];
    for (const dir of new Set(paths.map((p) => dirname(p)))) {
      try {
        // `..data`-style names: Kubernetes secret volumes swap a hidden symlinked directory.
        const watcher = watch(dir, { persistent: false }, (_event, name) => {
          if (name === null || names.has(String(name)) || String(name).startsWith('..')) changed();
        });
        watcher.on('error', () => watcher.close());
        watchers.push(watcher);
      } catch {
        // No inotify here (or the directory is gone): polling alone notices changes.
      }
    }
    return () => {
      for (const path of paths) unwatchFile(path, changed);
      for (const watcher of watchers) watcher.close();
    };
  }
}
