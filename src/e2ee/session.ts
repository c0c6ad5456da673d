import { SidecarError } from '../errors/index.js';
import type { Signers, SigningAlgo } from '../keys/index.js';
import { contentPartsOf } from './content-parts.js';
import { type E2eeEndpoint, type FieldKind, visitRequest, visitResponse } from './fields.js';
import type { E2eeScheme, KeyAgreement } from './scheme.js';
import { SseEncryptor } from './sse-encryptor.js';
import { type E2eeVersion, recipientKeyOf, schemeFor } from './suite.js';
import { refuseUnsealableParams, withholdUnsealable } from './unsealable-fields.js';

/** Request headers of NEAR AI's E2EE protocol (lower-case, as Node delivers them). */
export const E2EE_HEADERS = {
  algo: 'x-signing-algo',
  clientKey: 'x-client-pub-key',
  modelKey: 'x-model-pub-key',
  version: 'x-encryption-version',
  allFields: 'x-encrypt-all-fields',
} as const;

/**
 * Request headers to forward upstream without the E2EE ones: the model server gets plaintext, and an
 * upstream that speaks the protocol itself must not try to decrypt it again.
 */
export const withoutE2eeHeaders = <T>(headers: Record<string, T>): Record<string, T> => {
  const out = { ...headers };
  for (const name of Object.values(E2EE_HEADERS)) delete out[name];
  return out;
};

/** OpenAI paths (after /v1) on which E2EE is defined, and the field set each uses. */
const ENDPOINTS: Record<string, E2eeEndpoint> = {
  '/chat/completions': 'chat',
  '/completions': 'completions',
};

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

const bad = (message: string, code: string, param: string): SidecarError =>
  new SidecarError(message, { status: 400, code, param });

/** The answer could not be encrypted (not JSON): it is never sent in plaintext instead. */
export const e2eeUnencryptable = (): SidecarError =>
  new SidecarError('the model server answer cannot be end-to-end encrypted', {
    status: 502,
    code: 'e2ee_upstream_unencryptable',
  });

/**
 * The model server answered an E2EE request with an error (4xx/5xx) or a status that has no sealable
 * body: its body is withheld, since an error may quote the request in clear (a FastAPI-style 422
 * echoes the input in `detail`). The client keeps the status; NEAR's inference-proxy likewise never
 * relays a model server's error body as it is (`parse_upstream_error`, docs/protocol.md).
 */
export const e2eeUpstreamError = (status: number): SidecarError =>
  status >= 400 && status <= 599
    ? new SidecarError(
        `the model server refused the request (HTTP ${status}); its message is withheld because the request is end-to-end encrypted and the message may quote it`,
        { status, code: 'e2ee_upstream_error' },
      )
    : e2eeUnencryptable();

const WITHHELD_IN_BAND = Object.freeze({
  message:
    'the model server reported an error; its message is withheld because the request is end-to-end encrypted and the message may quote it',
  type: 'upstream_error',
  param: null,
  code: 'e2ee_upstream_error',
});

const HEX = /^[0-9a-fA-F]*$/;

const hexBytes = (value: string): Uint8Array | undefined =>
  value.length % 2 === 0 && HEX.test(value) ? new Uint8Array(Buffer.from(value, 'hex')) : undefined;

/**
 * One E2EE exchange, made from the request headers: decrypts the request's content fields with the
 * sidecar's key and encrypts the answer's to the client's key. Plaintext exists only in memory here
 * and in the upstream call; nothing of it is logged or put in an error.
 */
export class E2eeSession {
  private readonly scheme: E2eeScheme;
  /** Made at the first field sealed: one key agreement per answer (see E2eeScheme.sealTo). */
  private sealer: ((plaintext: Uint8Array) => Uint8Array) | undefined;
  /** Whether the request carried a sealed field of the `X-Encrypt-All-Fields` set. */
  private sealedExtended = false;

  constructor(
    readonly algo: SigningAlgo,
    readonly version: E2eeVersion,
    readonly allFields: boolean,
    readonly endpoint: E2eeEndpoint,
    private readonly recipient: Uint8Array,
    private readonly agree: KeyAgreement,
  ) {
    this.scheme = schemeFor(algo, version);
  }

  /**
   * Whether the answer's extended fields (tool calls, refusals, logprobs) are sealed: when the client
   * asked (`X-Encrypt-All-Fields: true`), and also when its request carried any of them sealed. A
   * client that sealed its tool definitions wants the tool calls sealed too, so a man in the middle
   * that strips the header does not get them in clear (inference-proxy reads the header alone;
   * docs/protocol.md, E2EE).
   */
  get sealsAllFields(): boolean {
    return this.allFields || this.sealedExtended;
  }

  /** Encrypts one field value to the client (hex); the empty string stays empty, as NEAR's does. */
  seal(plaintext: string): string {
    if (plaintext === '') return '';
    this.sealer ??= this.scheme.sealTo(this.recipient);
    return Buffer.from(this.sealer(encoder.encode(plaintext))).toString('hex');
  }

  /** Decrypts one hex field value; undefined when it is not hex or does not authenticate as UTF-8. */
  open(hex: string): string | undefined {
    const bytes = hexBytes(hex);
    if (bytes === undefined) return undefined;
    try {
      return strictUtf8.decode(this.scheme.open(bytes, this.agree));
    } catch {
      return undefined;
    }
  }

  /**
   * The request body as received (ciphertext fields) → the body to forward (plaintext fields). The
   * signature's request hash stays over the received bytes; this is only what the model sees.
   */
  decryptRequest(body: Uint8Array): Uint8Array {
    let parsed: unknown;
    try {
      parsed = JSON.parse(strictUtf8.decode(body));
    } catch {
      throw new SidecarError('request body is not valid JSON', { status: 400, code: 'invalid_json' });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new SidecarError('request body must be a JSON object', { status: 400, code: 'invalid_json' });
    }
    // The extended fields are opened leniently even without the header (see sealsAllFields).
    visitRequest(parsed as Record<string, unknown>, this.endpoint, true, (holder, key, kind, path) =>
      this.decryptField(holder, key, kind, path),
    );
    refuseUnsealableParams(parsed as Record<string, unknown>, this.endpoint, this.sealsAllFields);
    return encoder.encode(JSON.stringify(parsed));
  }

  private decryptField(holder: Record<string, unknown>, key: string, kind: FieldKind, path: string): void {
    const value = holder[key];
    if (typeof value !== 'string' || value === '') return;
    const plain = this.open(value);
    if (plain === undefined) {
      if (kind === 'lenient' || kind === 'json') return;
      throw bad(
        `"${path}" does not decrypt with this model's ${this.algo} key (header X-Client-Pub-Key, X-Signing-Algo: ${this.algo})`,
        'e2ee_decryption_failed',
        path,
      );
    }
    if (kind === 'lenient' || kind === 'json') this.sealedExtended = true;
    if (kind === 'content') {
      holder[key] = contentPartsOf(plain) ?? plain;
      return;
    }
    if (kind === 'json') {
      // A tool's parameters schema, sealed as its JSON text (inference-proxy `decrypt_tools_definitions`).
      holder[key] = parseJson(plain) ?? plain;
      return;
    }
    holder[key] = plain;
  }

  /** Encrypts the content fields of a parsed answer (a JSON body or one SSE chunk), in place. */
  encryptValue(value: Record<string, unknown>, streaming: boolean): void {
    // An in-band error (vLLM's mid-stream `{"error": {...}}`) is not a field the protocol seals, and
    // its message may quote the request: it is replaced, as error bodies are (e2eeUpstreamError).
    if (value.error !== undefined && value.error !== null) value.error = WITHHELD_IN_BAND;
    withholdUnsealable(value, this.endpoint, this.sealsAllFields);
    visitResponse(value, this.endpoint, streaming, this.sealsAllFields, (holder, key, kind) => {
      const v = holder[key];
      if (kind === 'json') {
        // Logprob `bytes`: an array is sealed as its JSON text; null stays null (`encrypt_bytes_field`).
        if (typeof v === 'object' && v !== null) holder[key] = this.seal(JSON.stringify(v));
        return;
      }
      if (typeof v === 'string' && v !== '') holder[key] = this.seal(v);
    });
  }

  /** A complete non-streaming JSON answer → the bytes to send (and hash). */
  encryptJson(body: Uint8Array): Uint8Array {
    let parsed: unknown;
    try {
      parsed = JSON.parse(strictUtf8.decode(body));
    } catch {
      throw e2eeUnencryptable();
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw e2eeUnencryptable();
    this.encryptValue(parsed as Record<string, unknown>, false);
    return encoder.encode(JSON.stringify(parsed));
  }

  /** A transformer for an SSE answer: every data event's content fields encrypted, event by event. */
  sseEncryptor(maxLineBytes?: number): SseEncryptor {
    return new SseEncryptor(
      (value) => {
        if (typeof value !== 'object' || value === null || Array.isArray(value)) throw e2eeUnencryptable();
        this.encryptValue(value as Record<string, unknown>, true);
      },
      e2eeUnencryptable,
      maxLineBytes,
    );
  }
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/** Reads one header; a repeated header is refused rather than guessed at. */
export type HeaderLookup = (name: string) => string | undefined;

/**
 * Parses the E2EE request headers. Returns undefined when the request asks for no encryption (neither
 * `X-Signing-Algo` nor `X-Client-Pub-Key`); throws a 400 naming the header for anything malformed,
 * a client key that is not a point, an `X-Model-Pub-Key` that is not this sidecar's key, or an
 * endpoint the protocol does not cover. The two headers come together or not at all, as in NEAR's
 * inference-proxy (`extract_encryption_context`).
 */
export const openE2eeSession = (
  header: HeaderLookup,
  openAiPath: string,
  signers: Signers,
): E2eeSession | undefined => {
  const algoHeader = header(E2EE_HEADERS.algo);
  const keyHeader = header(E2EE_HEADERS.clientKey);
  if (algoHeader === undefined && keyHeader === undefined) return undefined;
  if (algoHeader === undefined || keyHeader === undefined) {
    throw bad(
      'X-Signing-Algo and X-Client-Pub-Key must be sent together for end-to-end encryption',
      'invalid_e2ee_header',
      algoHeader === undefined ? 'X-Signing-Algo' : 'X-Client-Pub-Key',
    );
  }
  const algo = algoHeader.trim().toLowerCase();
  if (algo !== 'ecdsa' && algo !== 'ed25519') {
    throw bad('X-Signing-Algo must be ecdsa or ed25519', 'invalid_e2ee_header', 'X-Signing-Algo');
  }
  const endpoint = ENDPOINTS[openAiPath];
  if (endpoint === undefined) {
    throw bad(
      'end-to-end encryption (X-Signing-Algo, X-Client-Pub-Key) is supported on /v1/chat/completions and /v1/completions only',
      'e2ee_unsupported_endpoint',
      'X-Client-Pub-Key',
    );
  }
  const keyBytes = hexBytes(keyHeader.trim().replace(/^0x/i, ''));
  if (keyBytes === undefined)
    throw bad('X-Client-Pub-Key must be hex', 'invalid_e2ee_header', 'X-Client-Pub-Key');
  let recipient: Uint8Array;
  try {
    recipient = recipientKeyOf(algo, keyBytes);
  } catch (err) {
    throw bad(
      `X-Client-Pub-Key is not a valid ${algo} public key: ${(err as Error).message}`,
      'invalid_e2ee_header',
      'X-Client-Pub-Key',
    );
  }
  const versionHeader = header(E2EE_HEADERS.version)?.trim();
  let version: E2eeVersion = 1;
  if (versionHeader !== undefined && versionHeader !== '') {
    if (versionHeader !== '1' && versionHeader !== '2') {
      throw bad('X-Encryption-Version must be 1 or 2', 'invalid_e2ee_header', 'X-Encryption-Version');
    }
    version = Number(versionHeader) as E2eeVersion;
  }
  const signer = signers.get(algo);
  const modelKey = header(E2EE_HEADERS.modelKey)?.trim();
  if (modelKey !== undefined && !sameModelKey(algo, modelKey, signer.publicKey)) {
    throw bad(
      `X-Model-Pub-Key is not this model's ${algo} public key (see signing_public_key in /v1/attestation/report?signing_algo=${algo})`,
      'e2ee_model_key_mismatch',
      'X-Model-Pub-Key',
    );
  }
  const allFields = header(E2EE_HEADERS.allFields)?.trim().toLowerCase() === 'true';
  return new E2eeSession(algo, version, allFields, endpoint, recipient, (peer) => signer.ecdh(peer));
};

const sameModelKey = (algo: SigningAlgo, given: string, ours: string): boolean => {
  let hex = given.replace(/^0x/i, '').toLowerCase();
  if (algo === 'ecdsa' && hex.length === 130 && hex.startsWith('04')) hex = hex.slice(2);
  return hex === ours.toLowerCase();
};
