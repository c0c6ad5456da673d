import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto';

const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/** A fresh X25519 key pair for one seal: the public key and its agreement with a recipient. */
export const ephemeralX25519 = (): { publicKey: Uint8Array; agree: (peer: Uint8Array) => Uint8Array } => {
  const pair = generateKeyPairSync('x25519');
  const spki = pair.publicKey.export({ format: 'der', type: 'spki' });
  return {
    publicKey: new Uint8Array(spki.subarray(SPKI_PREFIX.length)),
    agree: (peer) =>
      new Uint8Array(
        diffieHellman({
          privateKey: pair.privateKey,
          publicKey: createPublicKey({
            key: Buffer.concat([SPKI_PREFIX, peer]),
            format: 'der',
            type: 'spki',
          }),
        }),
      ),
  };
};

const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** Key agreement for a raw X25519 private key (the client half's own key). */
export const x25519Agreement = (secret: Uint8Array): ((peer: Uint8Array) => Uint8Array) => {
  const der = Buffer.concat([PKCS8_PREFIX, secret]);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  der.fill(0);
  return (peer) =>
    new Uint8Array(
      diffieHellman({
        privateKey,
        publicKey: createPublicKey({ key: Buffer.concat([SPKI_PREFIX, peer]), format: 'der', type: 'spki' }),
      }),
    );
};
