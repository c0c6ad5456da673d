import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  Contract,
  getAddress,
  getBytes,
  hexlify,
  type JsonRpcProvider,
  keccak256,
  toUtf8Bytes,
  verifyMessage,
  Wallet,
} from 'ethers';

/**
 * A 0G provider broker for tests, following the HTTP contract of 0g-serving-broker (Go, read from
 * api/inference/internal: handler/handler.go routes, ctrl/request.go ValidateSession, ctrl/proxy.go
 * PrepareHTTPRequest, ctrl/chatbot.go, ctrl/sanitize.go, ctrl/signing.go). Not a copy: what a client
 * can observe, rebuilt on node:http.
 *
 * - `/v1/proxy/<rest>` forwards to `{targetUrl}<rest>`, query untouched. Chat bodies are
 *   re-serialized as Go's json.Marshal of a map does (sorted keys, compact, HTML-escaped), with
 *   `stream_options.include_usage` added to streams and the configured model enforced (separated).
 * - Every proxied request needs the SDK's bearer token (`app-sk-` base64(rawMessage|signature)),
 *   checked against the chain: provider, expiry, EIP-191 signature by the token's address,
 *   generation, the user's acknowledgement, the service's acknowledged signer, and the locked
 *   balance against unsettled fees plus the 1 0G reserve.
 * - Layout `separated` (TargetSeparated): answers stream through untouched; `signature/*` and
 *   `attestation/*` are the target's (a real sidecar).
 * - Layout `signing` (the broker signs in its CVM): the answer's id becomes `chatcmpl-<uuid>`, the
 *   header `ZG-Res-Key: <uuid>` is set, and the broker signs sha256(forwarded request):sha256(client
 *   bytes) with its TEE key, served at `/v1/proxy/signature/<uuid>`.
 * - `GET /v1/quote`: the broker's quote JSON; `GET /v1/user/{addr}/unsettledfee`: authenticated.
 * - Fees from each answer's usage accumulate per user; `settle()` settles them on chain with
 *   settleFeesWithTEE, EIP-712-signed by the TEE key, as the broker's settlement loop does.
 */

const SERVING_ABI = [
  'function getService(address provider) view returns ((address provider, string serviceType, string url, uint256 inputPrice, uint256 outputPrice, uint256 updatedAt, string model, string verifiability, string additionalInfo, address teeSignerAddress, bool teeSignerAcknowledged) service)',
  'function getAccount(address user, address provider) view returns ((address user, address provider, uint256 nonce, uint256 balance, uint256 pendingRefund, (uint256 index, uint256 amount, uint256 createdAt, bool processed)[] refunds, string additionalInfo, bool acknowledged, uint256 validRefundsLength, uint256 generation, uint256 revokedBitmap))',
  'function settleFeesWithTEE((address user, address provider, uint256 totalFee, bytes32 requestsHash, uint256 nonce, bytes signature)[] settlements) returns (uint8[] statuses)',
];

const MIN_LOCKED = 10n ** 18n;

/** 0g-serving-broker const.go RequestMetaDataDuplicate, plus hop-by-hop headers. */
const DROPPED_REQUEST_HEADERS = new Set([
  'address',
  'fee',
  'input-fee',
  'nonce',
  'request-hash',
  'signature',
  'session-token',
  'session-signature',
  'authorization',
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'keep-alive',
]);
const EPHEMERAL_TOKEN_ID = 255;

export interface BrokerDoubleOptions {
  rpc: JsonRpcProvider;
  chainId: bigint;
  inferenceAddress: string;
  providerKey: string;
  teeKey: string;
  layout: 'separated' | 'signing';
  /** Where /v1/proxy/<rest> goes: `{targetUrl}<rest>` (may end in /v1, as operators configure it). */
  targetUrl: string;
  model: string;
  quote?: Record<string, unknown>;
}

export interface BrokerDouble {
  url: string;
  providerAddress: string;
  teeAddress: string;
  /** What the broker forwarded: the exact body bytes that reached the target. */
  forwarded: Buffer[];
  unsettled(user: string): bigint;
  /** Serves another /v1/quote from now on (a broker restarted, or lying). */
  setQuote(quote: Record<string, unknown>): void;
  settle(): Promise<number[]>;
  close(): Promise<void>;
}

/** Go's json.Marshal of a decoded map: keys sorted, compact, `<>&` and U+2028/9 escaped. */
export const goMarshal = (value: unknown, escapeHtml = true): string => {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (typeof v === 'object' && v !== null) {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v).sort()) out[key] = sorted((v as Record<string, unknown>)[key]);
      return out;
    }
    return v;
  };
  const text = JSON.stringify(sorted(value))
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  return escapeHtml ? text.replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026') : text;
};

const readBody = (req: IncomingMessage): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });

const sendJson = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const startBrokerDouble = async (options: BrokerDoubleOptions): Promise<BrokerDouble> => {
  const provider = new Wallet(options.providerKey, options.rpc);
  const tee = new Wallet(options.teeKey);
  const serving = new Contract(options.inferenceAddress, SERVING_ABI, provider);
  const fees = new Map<string, bigint>();
  const signatures = new Map<string, Record<string, string>>();
  const forwarded: Buffer[] = [];
  let quote = options.quote;

  /** ValidateSession + ValidateRequestWithEstimatedFee, against the chain. */
  const authorize = async (req: IncomingMessage): Promise<string> => {
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Bearer app-sk-'))
      throw new Refusal(401, 'missing or invalid Authorization header');
    const decoded = Buffer.from(header.slice('Bearer app-sk-'.length), 'base64').toString('utf8');
    const bar = decoded.indexOf('|');
    if (bar < 0) throw new Refusal(401, 'invalid Authorization payload');
    const raw = decoded.slice(0, bar);
    const signature = decoded.slice(bar + 1);
    const token = JSON.parse(raw) as {
      address: string;
      provider: string;
      timestamp: number;
      expiresAt: number;
      generation: number;
      tokenId: number;
    };
    if (token.provider.toLowerCase() !== provider.address.toLowerCase())
      throw new Refusal(401, 'session token is for different provider');
    if (token.tokenId === EPHEMERAL_TOKEN_ID) {
      if (token.expiresAt === 0) throw new Refusal(401, 'ephemeral token must have an expiration time');
      if (token.expiresAt - token.timestamp > 24 * 3600 * 1000)
        throw new Refusal(401, 'ephemeral token duration cannot exceed 24 hours');
    }
    if (token.expiresAt > 0 && Date.now() > token.expiresAt) throw new Refusal(401, 'session token expired');
    // The SDK signs the 32 bytes keccak256(rawMessage) with personal_sign.
    const signer = verifyMessage(getBytes(keccak256(toUtf8Bytes(raw))), signature);
    if (signer.toLowerCase() !== token.address.toLowerCase())
      throw new Refusal(401, 'signature verification failed: address mismatch');
    const account = (await serving
      .getFunction('getAccount')(token.address, provider.address)
      .catch(() => {
        throw new Refusal(400, 'get account from contract, account not exist');
      })) as { balance: bigint; pendingRefund: bigint; acknowledged: boolean; generation: bigint };
    if (BigInt(token.generation) !== account.generation) throw new Refusal(401, 'token generation revoked');
    if (!account.acknowledged) throw new Refusal(400, 'user not acknowledge the provider');
    const service = (await serving.getFunction('getService')(provider.address)) as {
      teeSignerAcknowledged: boolean;
    };
    if (!service.teeSignerAcknowledged) throw new Refusal(400, 'service not acknowledge the tee signer');
    const user = getAddress(token.address);
    const locked = account.balance - account.pendingRefund;
    if (locked < (fees.get(user) ?? 0n) + MIN_LOCKED) throw new Refusal(400, 'insufficient balance');
    return user;
  };

  const prices = async (): Promise<{ input: bigint; output: bigint }> => {
    const s = (await serving.getFunction('getService')(provider.address)) as {
      inputPrice: bigint;
      outputPrice: bigint;
    };
    return { input: s.inputPrice, output: s.outputPrice };
  };

  const charge = async (user: string, usage: unknown): Promise<void> => {
    if (typeof usage !== 'object' || usage === null) return;
    const u = usage as { prompt_tokens?: number; completion_tokens?: number };
    const p = await prices();
    const fee = BigInt(u.prompt_tokens ?? 0) * p.input + BigInt(u.completion_tokens ?? 0) * p.output;
    fees.set(user, (fees.get(user) ?? 0n) + fee);
  };

  /** PrepareHTTPRequest for chatbot bodies: stream options, model enforcement, Go re-marshal. */
  const rewriteRequest = (body: Buffer): { bytes: Buffer; stream: boolean } => {
    const parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    const stream = parsed['stream'] === true;
    if (stream) {
      const opts = parsed['stream_options'];
      if (typeof opts === 'object' && opts !== null && !Array.isArray(opts)) {
        if (!('include_usage' in opts)) (opts as Record<string, unknown>)['include_usage'] = true;
      } else parsed['stream_options'] = { include_usage: true };
    }
    if (options.layout === 'separated') {
      if (parsed['model'] === undefined) parsed['model'] = options.model;
      else if (parsed['model'] !== options.model) {
        throw new Refusal(400, `model not supported: only '${options.model}' is available for this service`);
      }
    }
    return { bytes: Buffer.from(goMarshal(parsed)), stream };
  };

  const proxy = async (req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> => {
    const target = `${options.targetUrl}${rest}`;
    if (rest.startsWith('/signature/') && options.layout === 'signing') {
      const id = decodeURIComponent(rest.slice('/signature/'.length).split('?')[0] ?? '');
      const record = signatures.get(id);
      if (record === undefined)
        sendJson(res, 404, { error: 'Chat id not found or expired, chat_id_not_found' });
      else sendJson(res, 200, record);
      return;
    }
    if (rest.startsWith('/signature/') || rest.startsWith('/attestation/') || req.method === 'GET') {
      const upstream = await fetch(target, { headers: { accept: 'application/json' } });
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? '' });
      res.end(Buffer.from(await upstream.arrayBuffer()));
      return;
    }
    const user = await authorize(req);
    const { bytes, stream } = rewriteRequest(await readBody(req));
    forwarded.push(bytes);
    // The client's headers go on (E2EE headers among them), less 0G's own request metadata
    // (constant.RequestMetaDataDuplicate, Authorization included) and what the hop itself sets.
    const forwardHeaders: Record<string, string> = {};
    for (const [key, value] of Object.entries(req.headers)) {
      if (value === undefined || DROPPED_REQUEST_HEADERS.has(key)) continue;
      forwardHeaders[key] = Array.isArray(value) ? (value[0] ?? '') : value;
    }
    forwardHeaders['accept-encoding'] = 'identity';
    const upstream = await fetch(target, { method: 'POST', headers: forwardHeaders, body: bytes });
    const headers: Record<string, string> = { provider: provider.address };
    for (const [key, value] of upstream.headers) {
      if (key !== 'content-length' && key !== 'transfer-encoding' && key !== 'connection')
        headers[key] = value;
    }
    if (upstream.status !== 200) {
      res.writeHead(upstream.status, headers);
      res.end(Buffer.from(await upstream.arrayBuffer()));
      return;
    }
    const raw = Buffer.from(await upstream.arrayBuffer());
    let clientBody = raw;
    if (options.layout === 'signing') {
      const chatKey = randomUUID();
      const newId = `chatcmpl-${chatKey}`;
      const rewrite = (json: string): string => {
        const value = JSON.parse(json) as Record<string, unknown>;
        if ('id' in value) value['id'] = newId;
        return goMarshal(value, false);
      };
      clientBody = stream
        ? Buffer.from(
            raw
              .toString('utf8')
              .split('\n')
              .map((line) => {
                const data = line.startsWith('data: ') ? line.slice(6).trim() : '';
                return data.startsWith('{') ? `data: ${rewrite(data)}` : line;
              })
              .join('\n'),
          )
        : Buffer.from(rewrite(raw.toString('utf8')));
      delete headers['zg-res-key'];
      headers['ZG-Res-Key'] = chatKey;
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      const text = `${sha(bytes)}:${sha(clientBody)}`;
      signatures.set(chatKey, {
        text,
        signature: await tee.signMessage(text),
        signing_address: tee.address,
        signing_algo: 'ecdsa',
      });
    }
    // Billing reads the raw upstream bytes (ctrl/chatbot.go decodeAndProcess). The real broker bills
    // after the last byte is written; billing first keeps a test's read of the fees deterministic.
    let usage: unknown;
    if (stream) {
      for (const line of raw.toString('utf8').split('\n')) {
        const data = line.startsWith('data: ') ? line.slice(6).trim() : '';
        if (data.startsWith('{')) usage = (JSON.parse(data) as { usage?: unknown }).usage ?? usage;
      }
    } else usage = (JSON.parse(raw.toString('utf8')) as { usage?: unknown }).usage;
    await charge(user, usage);
    res.writeHead(200, headers);
    res.end(clientBody);
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = req.url ?? '/';
    if (url.startsWith('/v1/proxy/')) {
      await proxy(req, res, url.slice('/v1/proxy'.length));
      return;
    }
    if (url === '/v1/quote' && req.method === 'GET') {
      if (quote === undefined) sendJson(res, 404, { error: 'no quote' });
      else sendJson(res, 200, quote);
      return;
    }
    const unsettled = /^\/v1\/user\/(0x[0-9a-fA-F]{40})\/unsettledfee$/.exec(url);
    if (unsettled?.[1] !== undefined && req.method === 'GET') {
      const user = await authorize(req);
      if (user.toLowerCase() !== unsettled[1].toLowerCase()) throw new Refusal(403, 'not your fee');
      sendJson(res, 200, { userAddress: user, unsettledFee: (fees.get(user) ?? 0n).toString() });
      return;
    }
    sendJson(res, 404, { error: 'not found' });
  };

  const server: Server = createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (error instanceof Refusal) sendJson(res, error.status, { error: error.message });
      else sendJson(res, 500, { error: 'broker double failure' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    providerAddress: provider.address,
    teeAddress: tee.address,
    forwarded,
    unsettled: (user) => fees.get(getAddress(user)) ?? 0n,
    setQuote: (next) => {
      quote = next;
    },
    async settle() {
      const statuses: number[] = [];
      const domain = {
        name: '0G Inference Serving',
        version: '1',
        chainId: options.chainId,
        verifyingContract: options.inferenceAddress,
      };
      const types = {
        TEESettlement: [
          { name: 'requestsHash', type: 'bytes32' },
          { name: 'nonce', type: 'uint256' },
          { name: 'provider', type: 'address' },
          { name: 'user', type: 'address' },
          { name: 'totalFee', type: 'uint256' },
        ],
      };
      for (const [user, totalFee] of fees) {
        if (totalFee === 0n) continue;
        const account = (await serving.getFunction('getAccount')(user, provider.address)) as {
          nonce: bigint;
        };
        const settlement = {
          requestsHash: hexlify(randomBytes(32)),
          nonce: account.nonce + 1n,
          provider: provider.address,
          user,
          totalFee,
        };
        const signature = await tee.signTypedData(domain, types, settlement);
        const row = { ...settlement, signature };
        const preview = (await serving.getFunction('settleFeesWithTEE').staticCall([row])) as bigint[];
        statuses.push(Number(preview[0]));
        await (await serving.getFunction('settleFeesWithTEE')([row])).wait();
        fees.set(user, 0n);
      }
      return statuses;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};
