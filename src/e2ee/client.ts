import { createECDH, randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { SigningAlgo } from '../keys/index.js';
import { contentPartsOf } from './content-parts.js';
import { type E2eeEndpoint, fieldsProtected, visitRequest, visitResponse } from './fields.js';
import type { KeyAgreement } from './scheme.js';
import { type E2eeVersion, recipientKeyOf, schemeFor } from './suite.js';
import { x25519Agreement } from './x25519.js';

export interface E2eeClientOptions {
  algo: SigningAlgo;
  /** The model's key from the report (`model_attestations[].signing_public_key`), hex. */
  modelPublicKey: string;
  /** `X-Encryption-Version` to send; 1 (NEAR's published clients) when absent. */
  version?: E2eeVersion;
  /** Send `X-Encrypt-All-Fields: true` and encrypt tool calls, names, refusals and logprobs too. */
  encryptAllFields?: boolean;
}

/**
 * The client half of NEAR AI's E2EE protocol, with a throwaway key pair made per client: encrypts
 * request fields to the model's attested key and decrypts the answer's fields with its own key.
 */
export interface E2eeClient {
  readonly algo: SigningAlgo;
  /** This client's public key as sent in `X-Client-Pub-Key` (ecdsa 64 bytes, ed25519 32), hex. */
  readonly publicKey: string;
  /** The request headers that ask for E2EE (X-Signing-Algo, X-Client-Pub-Key, X-Model-Pub-Key, …). */
  readonly headers: Readonly<Record<string, string>>;
  /** The fields sealed, in words (for a status page), e.g. "message contents, tool calls, …". */
  readonly protects: string;
  encrypt(plaintext: string): string;
  /** Throws when the value is not hex or does not authenticate. */
  decrypt(ciphertextHex: string): string;
  /** A copy of a request body with its content fields encrypted. */
  encryptRequest<T extends object>(body: T, endpoint?: E2eeEndpoint): T;
  /** A copy of an answer (JSON body, or one parsed SSE chunk when `streaming`) with fields decrypted. */
  decryptResponse<T extends object>(body: T, options?: { endpoint?: E2eeEndpoint; streaming?: boolean }): T;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();
const HEX = /^(?:[0-9a-fA-F]{2})*$/;

const clientKeys = (algo: SigningAlgo): { publicKey: string; agree: KeyAgreement } => {
  if (algo === 'ecdsa') {
    const ecdh = createECDH('secp256k1');
    const point = ecdh.generateKeys();
    return {
      publicKey: point.subarray(1).toString('hex'),
      agree: (peer) => new Uint8Array(ecdh.computeSecret(peer)),
    };
  }
  const seed = randomBytes(32);
  const publicKey = Buffer.from(ed25519.getPublicKey(seed)).toString('hex');
  const agree = x25519Agreement(ed25519.utils.toMontgomerySecret(seed));
  seed.fill(0);
  return { publicKey, agree };
};

export const createE2eeClient = (options: E2eeClientOptions): E2eeClient => {
  const { algo } = options;
  const version = options.version ?? 1;
  const modelKeyHex = options.modelPublicKey.replace(/^0x/i, '');
  if (!HEX.test(modelKeyHex)) throw new RangeError('modelPublicKey must be hex');
  const recipient = recipientKeyOf(algo, new Uint8Array(Buffer.from(modelKeyHex, 'hex')));
  const scheme = schemeFor(algo, version);
  const own = clientKeys(algo);
  const headers: Record<string, string> = {
    'X-Signing-Algo': algo,
    'X-Client-Pub-Key': own.publicKey,
    'X-Model-Pub-Key': modelKeyHex.toLowerCase(),
  };
  if (options.version !== undefined) headers['X-Encryption-Version'] = String(version);
  if (options.encryptAllFields === true) headers['X-Encrypt-All-Fields'] = 'true';
  const allFields = options.encryptAllFields === true;

  const sealWith = (seal: (p: Uint8Array) => Uint8Array, plaintext: string): string =>
    plaintext === '' ? '' : Buffer.from(seal(encoder.encode(plaintext))).toString('hex');
  const encrypt = (plaintext: string): string => sealWith(scheme.sealTo(recipient), plaintext);
  const decrypt = (hex: string): string => {
    if (hex === '') return '';
    if (!HEX.test(hex)) throw new RangeError('ciphertext is not hex');
    return strictUtf8.decode(scheme.open(new Uint8Array(Buffer.from(hex, 'hex')), own.agree));
  };

  return Object.freeze({
    algo,
    publicKey: own.publicKey,
    headers: Object.freeze(headers),
    protects: fieldsProtected(allFields),
    encrypt,
    decrypt,
    encryptRequest<T extends object>(body: T, endpoint: E2eeEndpoint = 'chat'): T {
      const copy = structuredClone(body) as Record<string, unknown>;
      // One sealer per request: one ephemeral key for all its fields, a fresh nonce for each.
      const seal = scheme.sealTo(recipient);
      visitRequest(copy, endpoint, allFields, (holder, key, kind) => {
        const v = holder[key];
        // A text that reads as content parts goes inside one text part, so it reaches the model
        // as the text it is (see contentPartsOf).
        if (typeof v === 'string' && kind === 'content' && contentPartsOf(v) !== undefined)
          holder[key] = sealWith(seal, JSON.stringify([{ type: 'text', text: v }]));
        else if (typeof v === 'string') holder[key] = sealWith(seal, v);
        else if ((kind === 'content' || kind === 'json') && v !== undefined && v !== null)
          holder[key] = sealWith(seal, JSON.stringify(v));
      });
      return copy as T;
    },
    decryptResponse<T extends object>(
      body: T,
      opts: { endpoint?: E2eeEndpoint; streaming?: boolean } = {},
    ): T {
      const copy = structuredClone(body) as Record<string, unknown>;
      visitResponse(
        copy,
        opts.endpoint ?? 'chat',
        opts.streaming ?? false,
        allFields,
        (holder, key, kind) => {
          const v = holder[key];
          if (typeof v !== 'string' || v === '') return;
          const plain = decrypt(v);
          holder[key] = kind === 'json' ? JSON.parse(plain) : plain;
        },
      );
      return copy as T;
    },
  });
};
