import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { describe, expect, it } from 'vitest';
import { createE2eeClient, type E2eeVersion, recipientKeyOf, schemeFor } from '../../src/e2ee/index.js';

/**
 * Issue 21, item 2 asks the gateway to prefer the E2EE scheme that authenticates the sender per
 * chunk, naming the ed25519 NaCl box. As NEAR's wire format frames it, every answer field is sealed
 * under an *ephemeral* sender key (`ephemeral key ‖ nonce ‖ box`), never the model's attested key, so
 * neither scheme authenticates the sender: anyone who sees the client's public key
 * (`X-Client-Pub-Key` crosses the wire) can seal a field the client opens. This pins that fact, so
 * that no scheme is ever treated as authenticating chunks before the signature verified.
 */
describe('E2EE answer fields do not authenticate their sender', () => {
  const cases: Array<['ecdsa' | 'ed25519', E2eeVersion]> = [
    ['ecdsa', 1],
    ['ed25519', 1],
    ['ed25519', 2],
  ];
  it.each(cases)('%s v%s: a field sealed by a stranger to the client key opens', (algo, version) => {
    const modelKey =
      algo === 'ecdsa'
        ? Buffer.from(secp256k1.getPublicKey(secp256k1.utils.randomSecretKey(), false).subarray(1)).toString(
            'hex',
          )
        : Buffer.from(ed25519.getPublicKey(ed25519.utils.randomSecretKey())).toString('hex');
    const client = createE2eeClient({ algo, modelPublicKey: modelKey, version });
    // The man in the middle knows only the client's public key, from the request headers.
    const recipient = recipientKeyOf(algo, new Uint8Array(Buffer.from(client.publicKey, 'hex')));
    const forged = schemeFor(algo, version).sealTo(recipient)(new TextEncoder().encode('injected tool call'));
    expect(client.decrypt(Buffer.from(forged).toString('hex'))).toBe('injected tool call');
  });
});
