import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import type { TlsBinding } from '../attestation/index.js';
import { toHex } from '../bytes/index.js';
import { spkiSha256, type TlsIdentity } from './identity.js';

/** Identities remembered after a reload, so keep-alive connections opened before it still bind theirs. */
const RECENT = 4;

/**
 * Which certificate a report request binds (`include_tls_fingerprint=true`).
 *
 * When the sidecar terminates TLS, the answer is the certificate *this connection* presented: a
 * verifier compares the report with the peer certificate of the connection that carried it (NEAR's
 * tls_verifier.ts reads it from the response's socket), and after a reload a keep-alive connection
 * opened earlier still shows the old certificate. Otherwise (a terminator elsewhere in the CVM) it
 * is the configured certificate.
 */
export class TlsBinder {
  private current: TlsIdentity;
  private readonly recent = new Map<string, TlsIdentity>();
  private readonly perSocket = new WeakMap<TLSSocket, TlsBinding>();

  constructor(
    identity: TlsIdentity,
    /** True when the sidecar's own server presents the certificate. */
    readonly terminates: boolean,
  ) {
    this.current = identity;
    this.remember(identity);
  }

  get identity(): TlsIdentity {
    return this.current;
  }

  update(identity: TlsIdentity): void {
    this.current = identity;
    this.remember(identity);
  }

  /**
   * Records the certificate a new connection presented (the server's `secureConnection` event):
   * Node stops exposing it on a keep-alive socket after its first response.
   */
  noteConnection(socket: TLSSocket): void {
    const local = socket.getX509Certificate();
    if (local === undefined) return;
    const spki = spkiSha256(local);
    this.perSocket.set(socket, {
      spkiSha256: spki,
      certificate: this.recent.get(toHex(spki))?.certificate ?? `${local.toString().trim()}\n`,
    });
  }

  forRequest(incoming: IncomingMessage): TlsBinding {
    const socket = incoming.socket;
    if (this.terminates && socket instanceof TLSSocket) {
      if (!this.perSocket.has(socket)) this.noteConnection(socket);
      const known = this.perSocket.get(socket);
      if (known !== undefined) return known;
    }
    return { spkiSha256: this.current.spkiSha256, certificate: this.current.certificate };
  }

  private remember(identity: TlsIdentity): void {
    this.recent.delete(identity.fingerprint);
    this.recent.set(identity.fingerprint, identity);
    while (this.recent.size > RECENT) {
      const oldest = this.recent.keys().next().value;
      if (oldest === undefined) break;
      this.recent.delete(oldest);
    }
  }
}
