import type { TlsIdentity } from './identity.js';

/**
 * Where the TLS identity comes from (config `TLS_KEY_SOURCE`), one file per implementation:
 * `file.ts` (PEM files, also the certificate-only layout), `generate.ts` (in memory, self-signed),
 * `dstack.ts` (guest agent GetTlsKey), `tapp.ts` (0G Tapp GetAppTlsCert).
 */
export interface TlsSource {
  readonly kind: 'file' | 'bind' | 'generate' | 'dstack' | 'tapp';
  /**
   * True when the sidecar serves HTTPS with this identity; false when it only binds a certificate a
   * TLS terminator elsewhere in the same CVM serves (TLS_CERT_PATH without a key).
   */
  readonly terminates: boolean;
  /** Loads and checks the identity; throws TlsConfigError (or a SidecarError from a platform client). */
  load(signal?: AbortSignal): Promise<TlsIdentity>;
  /**
   * Sources whose identity can change underneath (files renewed by ACME in the CVM) report each new,
   * checked identity, or why a change could not be used. Returns a function that stops watching.
   */
  watch?(onIdentity: (identity: TlsIdentity) => void, onError: (error: Error) => void): () => void;
  /** Releases a platform client. */
  close?(): void;
}
