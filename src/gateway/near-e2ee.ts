import { createE2eeClient, type E2eeEndpoint, fieldsProtected } from '../e2ee/index.js';
import { SidecarError } from '../errors/index.js';
import { type E2eeClient, type E2eeSession, reportAdvertisesE2ee } from './e2ee.js';
import { assertE2eeProtected } from './e2ee-field-guard.js';
import { neutralToolIds } from './neutral-tool-ids.js';

/** OpenAI paths (after /v1) NEAR's protocol covers, and the field set each uses. */
const ENDPOINTS: Record<string, E2eeEndpoint> = {
  '/chat/completions': 'chat',
  '/completions': 'completions',
};

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

const parseObject = (text: string, failure: () => SidecarError): object => {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw failure();
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw failure();
  return value;
};

const notJson = (): SidecarError =>
  new SidecarError('request body is not a JSON object; it cannot be end-to-end encrypted', {
    status: 400,
    code: 'invalid_json',
  });

/** A verified answer that does not decrypt with this request's key: refused, never shown sealed. */
const undecryptable = (): SidecarError =>
  new SidecarError("the provider's verified answer does not decrypt with this request's E2EE key", {
    status: 502,
    code: 'e2ee_answer_undecryptable',
  });

const guarded =
  <T>(fn: () => T) =>
  (): T => {
    try {
      return fn();
    } catch (error) {
      if (error instanceof SidecarError) throw error;
      throw undecryptable();
    }
  };

/**
 * The gateway's E2EE step on the client half of src/e2ee (NEAR AI's protocol): per request a fresh
 * client key pair, the user's contents sealed to the attested key, the verified answer opened. Every
 * request asks for `X-Encrypt-All-Fields: true`, so tool calls, tool definitions and function names
 * are sealed too (docs/protocol.md, E2EE; issue 21 item 8).
 */
export const nearE2eeClient: E2eeClient = {
  name: 'near-e2ee v1',
  protects: fieldsProtected(true),
  supports: reportAdvertisesE2ee,
  session({ openAiPath, algo, signingAddress, signingPublicKey }): E2eeSession | undefined {
    const endpoint = ENDPOINTS[openAiPath];
    if (endpoint === undefined) return undefined;
    // ed25519: the attested address is the public key; ecdsa needs the attested point itself.
    const modelPublicKey = algo === 'ed25519' ? signingAddress : signingPublicKey;
    if (modelPublicKey === undefined) {
      throw new SidecarError('the attested report gives no signing_public_key to encrypt to', {
        status: 502,
        code: 'e2ee_no_attested_key',
      });
    }
    const client = createE2eeClient({ algo, modelPublicKey, encryptAllFields: true });
    return {
      // ECIES, the NaCl box and XChaCha20 all seal from an ephemeral key (src/e2ee/scheme.ts): the
      // answer proves only that it was sealed to us, not by whom.
      authenticatesSender: false,
      prepareRequest: async ({ body }) => {
        const value = parseObject(decoder.decode(body), notJson);
        // Nothing leaves with a field the protocol does not seal and that may carry user content.
        assertE2eeProtected(value as Record<string, unknown>, endpoint);
        neutralToolIds(value as Record<string, unknown>);
        return {
          body: encoder.encode(JSON.stringify(client.encryptRequest(value, endpoint))),
          headers: { ...client.headers },
        };
      },
      restoreBody: async (body) =>
        guarded(() => {
          const value = parseObject(decoder.decode(body), undecryptable);
          return encoder.encode(JSON.stringify(client.decryptResponse(value, { endpoint })));
        })(),
      restoreEventData: async (data) =>
        guarded(() => {
          const value = parseObject(data, undecryptable);
          return JSON.stringify(client.decryptResponse(value, { endpoint, streaming: true }));
        })(),
    };
  },
};
