import { SidecarError } from '../errors/index.js';
import type { Attestation } from './attestor.js';
import type { E2eeClient, E2eeSession } from './e2ee.js';
import { type E2eeRequirement, reportOffersE2eeFor } from './e2ee-requirement.js';

/** The E2EE state for the status page and /health. */
export interface E2eeStatus {
  /** on: requests are encrypted; off: they are not (and why); refused: the attestation failed an E2EE check. */
  state: 'on' | 'off' | 'refused' | 'waiting';
  /** Whether a report without E2EE for the attested key fails attestation (`e2ee.required`). */
  required: boolean;
  /** The failed E2EE check (`e2ee.required`, `e2ee.downgrade`) while refused. */
  check?: string;
}

/**
 * Whether a request is end-to-end encrypted: only in mode 'auto', with a client built in, and when
 * the attested report offers E2EE for the attested key. With `required` (policy `requireE2ee`), a
 * report that does not fails attestation instead (e2ee-requirement.ts), so no request goes in clear.
 */
export class E2eeChoice {
  constructor(
    private readonly mode: 'auto' | 'off',
    private readonly client: E2eeClient | undefined,
    private readonly required = false,
  ) {}

  /** What the attestor checks: undefined when the gateway never encrypts (--no-e2ee, no client). */
  requirement(): E2eeRequirement | undefined {
    const client = this.client;
    if (this.mode === 'off' || client === undefined) return undefined;
    return {
      required: this.required,
      offered: (report, address) => client.supports(report) && reportOffersE2eeFor(report, address),
    };
  }

  /** The state for /health and the status page, given the latest attestation. */
  status(current: Attestation | undefined): E2eeStatus {
    const required = this.requirement()?.required ?? false;
    const check = current?.failedCheck;
    if (check === 'e2ee.required' || check === 'e2ee.downgrade') return { state: 'refused', required, check };
    if (this.mode === 'off' || this.client === undefined) return { state: 'off', required };
    if (current?.ok !== true) return { state: 'waiting', required };
    return { state: this.offered(current) ? 'on' : 'off', required };
  }

  /** The state in words for the status page, given the latest attestation. */
  describe(current: Attestation | undefined): string {
    if (this.mode === 'off') return 'off (--no-e2ee)';
    if (this.client === undefined)
      return 'unavailable: this build has no E2EE client (answers are still verified)';
    const status = this.status(current);
    if (status.state === 'refused')
      return `refused (${status.check}): the provider's report does not offer E2EE for the attested key; nothing is sent`;
    if (status.state === 'waiting') return 'waiting for attestation';
    return status.state === 'on' ? `on (${this.client.name})` : 'off: the provider does not advertise E2EE';
  }

  /** The same state as facts for /health and the page: on or not, with which client, in words. */
  facts(current: Attestation | undefined): E2eeStatus & {
    on: boolean;
    scheme: string | null;
    words: string;
    protects?: string;
  } {
    const status = this.status(current);
    const on = status.state === 'on';
    const protects = on ? this.client?.protects : undefined;
    return {
      ...status,
      on,
      scheme: on ? (this.client?.name ?? null) : null,
      words: this.describe(current),
      ...(protects === undefined ? {} : { protects }),
    };
  }

  /**
   * A session for one request (with a body) to the attested signer's key, or undefined to send it in
   * the clear. With `required`, a route the protocol does not encrypt (embeddings, responses, ...) is
   * refused rather than sent in clear: no prompt leaves unencrypted while E2EE is required.
   */
  sessionFor(openAiPath: string, a: Attestation): E2eeSession | undefined {
    if (this.mode === 'off' || this.client === undefined || a.signer === undefined) return undefined;
    if (!this.offered(a)) return undefined;
    const session = this.client.session({
      openAiPath,
      algo: a.signer.algo,
      signingAddress: a.signer.address,
      signingPublicKey: a.signer.publicKey,
    });
    if (session === undefined && this.required)
      throw new SidecarError(
        'this route cannot be end-to-end encrypted and E2EE is required (policy requireE2ee); nothing was sent',
        { status: 400, code: 'e2ee_unsupported_endpoint' },
      );
    return session;
  }

  private offered(a: Attestation): boolean {
    const requirement = this.requirement();
    return (
      requirement !== undefined && a.signer !== undefined && requirement.offered(a.report, a.signer.address)
    );
  }
}
