import type { TappClient } from '../tapp/index.js';
import { TlsConfigError, type TlsIdentity, tlsIdentity } from './identity.js';
import type { TlsSource } from './tls-source.js';

export interface TappTlsSourceOptions {
  client: TappClient;
  /** TAPP_APP_ID. */
  appId: string;
  now?: () => Date;
}

const HEX_SHA256 = /^(?:0x)?([0-9a-fA-F]{64})$/;

/**
 * TLS_KEY_SOURCE=tapp: 0G Tapp's `GetAppTlsCert` (Tapp ≥ 0.4.0, unix socket only). Tapp states the
 * key's `public_key_sha256`, the value it commits to in runtime_data.tls_public_key; we recompute it
 * from the certificate and refuse to start when the two differ (fail closed: a verifier comparing
 * either against the live certificate would fail anyway).
 */
export class TappTlsSource implements TlsSource {
  readonly kind = 'tapp' as const;
  readonly terminates = true;
  private readonly now: () => Date;

  constructor(private readonly options: TappTlsSourceOptions) {
    if (options.appId === '') throw new RangeError('"appId" must not be empty');
    this.now = options.now ?? (() => new Date());
  }

  async load(signal?: AbortSignal): Promise<TlsIdentity> {
    const answer = await this.options.client.getAppTlsCert(this.options.appId, signal);
    const identity = tlsIdentity({
      source: this.kind,
      certificate: answer.certPem,
      key: answer.keyPem,
      certificateOrigin: 'tapp GetAppTlsCert cert_pem',
      keyOrigin: 'tapp GetAppTlsCert key_pem',
      now: this.now(),
    });
    const stated = HEX_SHA256.exec(answer.publicKeySha256)?.[1]?.toLowerCase();
    if (stated === undefined) {
      throw new TlsConfigError('tapp GetAppTlsCert: public_key_sha256 is not 32 bytes of hex');
    }
    if (stated !== identity.fingerprint) {
      throw new TlsConfigError(
        "tapp GetAppTlsCert: public_key_sha256 is not the sha256 of the certificate's SubjectPublicKeyInfo",
      );
    }
    return identity;
  }

  close(): void {
    this.options.client.close();
  }
}
