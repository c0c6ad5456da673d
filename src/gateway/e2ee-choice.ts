import type { Attestation } from './attestor.js';
import type { E2eeClient, E2eeSession } from './e2ee.js';

/**
 * Whether a request is end-to-end encrypted: only in mode 'auto', with a client built in, and when
 * the attested report advertises E2EE. Otherwise requests go in the clear and answers are still
 * verified.
 */
export class E2eeChoice {
  constructor(
    private readonly mode: 'auto' | 'off',
    private readonly client: E2eeClient | undefined,
  ) {}

  /** The state in words for the status page, given the trusted attestation's report. */
  describe(report: unknown): string {
    if (this.mode === 'off') return 'off (--no-e2ee)';
    if (this.client === undefined)
      return 'unavailable: this build has no E2EE client (answers are still verified)';
    if (report === undefined) return 'waiting for attestation';
    return this.client.supports(report)
      ? `on (${this.client.name})`
      : 'off: the provider does not advertise E2EE';
  }

  /** The same state as facts for /health: whether requests are encrypted now, with which client. */
  status(report: unknown): { on: boolean; scheme: string | null; words: string } {
    const on =
      this.mode === 'auto' &&
      this.client !== undefined &&
      report !== undefined &&
      this.client.supports(report);
    return { on, scheme: on ? (this.client?.name ?? null) : null, words: this.describe(report) };
  }

  /** A session for one request to the attested signer's key, or undefined to send it in the clear. */
  sessionFor(openAiPath: string, a: Attestation): E2eeSession | undefined {
    if (this.mode === 'off' || this.client === undefined || a.signer === undefined) return undefined;
    if (!this.client.supports(a.report)) return undefined;
    return this.client.session({
      openAiPath,
      algo: a.signer.algo,
      signingAddress: a.signer.address,
      signingPublicKey: a.signer.publicKey,
    });
  }
}
