import type { DstackClient } from '../dstack/index.js';
import { type TlsIdentity, tlsIdentity } from './identity.js';
import type { TlsSource } from './tls-source.js';

export interface DstackTlsSourceOptions {
  client: DstackClient;
  /** TLS_HOSTNAMES: the first is the subject, all are subjectAltNames. */
  hostnames: readonly string[];
  now?: () => Date;
}

/**
 * TLS_KEY_SOURCE=dstack: the Dstack guest agent's `GetTlsKey`. The agent makes a key inside the CVM
 * and certifies it with the app's KMS-derived CA, so the chain also names the app to clients that
 * trust that CA; verifiers of this sidecar trust the attested SPKI hash either way. A new key per
 * start (the agent derives a fresh one per call).
 */
export class DstackTlsSource implements TlsSource {
  readonly kind = 'dstack' as const;
  readonly terminates = true;
  private readonly now: () => Date;

  constructor(private readonly options: DstackTlsSourceOptions) {
    if (options.hostnames.length === 0) throw new RangeError('"hostnames" must name at least one host');
    this.now = options.now ?? (() => new Date());
  }

  async load(signal?: AbortSignal): Promise<TlsIdentity> {
    const [subject = ''] = this.options.hostnames;
    const answer = await this.options.client.getTlsKey({ subject, altNames: this.options.hostnames }, signal);
    return tlsIdentity({
      source: this.kind,
      certificate: answer.certificateChain.join('\n'),
      key: answer.key,
      certificateOrigin: 'dstack GetTlsKey certificate_chain',
      keyOrigin: 'dstack GetTlsKey key',
      now: this.now(),
    });
  }
}
