import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import { type AddressInfo, connect, createServer as createTcpServer, type Socket } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectLink, type ProviderLink } from '../../src/gateway/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { startMitm, startTestGateway, type TestGateway } from './harness.js';

/**
 * The signature travels with the answer (docs/protocol.md, "The signature in a trailer"): the
 * gateway asks for it on every signed request, checks the answer from it with no
 * `GET /signature/{id}`, falls back to that lookup when a proxy on the path drops the trailer, and
 * fails an answer whose trailer does not verify without asking the lookup to rescue it. Over
 * attested TLS the pinned connections are pooled: no handshake per request.
 */

const messages = [{ role: 'user' as const, content: SECRET_MARKERS.prompt }];

/** A man in the middle that streams answers through with their trailers, and may change a trailer. */
interface TrailerProxy {
  url: string;
  seen: Array<{ method: string; path: string; headers: IncomingHttpHeaders }>;
  trailer: (value: string) => string;
  close(): Promise<void>;
}

const startTrailerProxy = async (target: string): Promise<TrailerProxy> => {
  const proxy = { seen: [], trailer: (v: string) => v } as unknown as TrailerProxy;
  const server: Server = createServer((req, res) => {
    proxy.seen.push({ method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers });
    const headers = { ...req.headers };
    delete headers.host;
    const up = request(`${target}${req.url ?? '/'}`, { method: req.method ?? 'GET', headers }, (answer) => {
      const out = { ...answer.headers };
      for (const name of ['content-length', 'transfer-encoding', 'connection', 'keep-alive'])
        delete out[name];
      res.writeHead(answer.statusCode ?? 502, out);
      answer.on('data', (chunk: Buffer) => res.write(chunk));
      answer.on('end', () => {
        const kept: Record<string, string> = {};
        for (const [name, value] of Object.entries(answer.trailers))
          if (value !== undefined) kept[name] = proxy.trailer(value);
        res.addTrailers(kept);
        res.end();
      });
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(proxy, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
};

const chat = async (gateway: TestGateway, stream: boolean): Promise<string | null> => {
  const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  if (!stream) {
    const json = await client.chat.completions
      .create({ model: 'teeml-demo', messages, max_tokens: 4 })
      .withResponse();
    return json.response.headers.get('x-teeml-verification');
  }
  const res = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'teeml-demo', messages, max_tokens: 4, stream: true }),
  });
  await res.text();
  // Node's fetch drops trailers: the verdict is read from the gateway's counters by the caller.
  return res.status === 200 ? 'streamed' : `HTTP ${res.status}`;
};

const lookups = (seen: TrailerProxy['seen']) => seen.filter((s) => s.path.includes('/signature/')).length;

let sidecar: TestSidecar;
beforeAll(async () => {
  sidecar = await startTestSidecar();
});
afterAll(async () => {
  await sidecar.close();
});

describe('the gateway checks answers from the signature trailer', () => {
  it('JSON and streams are verified from the trailer, with no GET /signature at all', async () => {
    const proxy = await startTrailerProxy(sidecar.url);
    const gateway = await startTestGateway(proxy.url);
    try {
      expect(await chat(gateway, false)).toBe('verified');
      expect(await chat(gateway, true)).toBe('streamed');
      expect(await chat(gateway, false)).toBe('verified');
      expect(gateway.counters).toMatchObject({ verified: 3, failed: 0 });
      const posts = proxy.seen.filter((s) => s.method === 'POST');
      expect(posts).toHaveLength(3);
      for (const post of posts) expect(post.headers['x-teeml-signature-trailer']).toBe('ecdsa');
      expect(lookups(proxy.seen)).toBe(0);
    } finally {
      await gateway.close();
      await proxy.close();
    }
  });

  it('a proxy that strips trailers: verified through GET /signature/{id}', async () => {
    const mitm = await startMitm(sidecar.url);
    const gateway = await startTestGateway(mitm.url);
    try {
      expect(await chat(gateway, false)).toBe('verified');
      expect(await chat(gateway, true)).toBe('streamed');
      expect(gateway.counters).toMatchObject({ verified: 2, failed: 0 });
      expect(mitm.seen.filter((s) => s.path.includes('/signature/'))).toHaveLength(2);
    } finally {
      await gateway.close();
      await mitm.close();
    }
  });

  it('a tampered trailer fails the answer, and the lookup is not asked to rescue it', async () => {
    const proxy = await startTrailerProxy(sidecar.url);
    const gateway = await startTestGateway(proxy.url);
    try {
      // A well-formed record whose signed text names another response hash.
      proxy.trailer = (value) => {
        const record = JSON.parse(Buffer.from(value, 'base64url').toString()) as { text: string };
        const last = record.text.at(-1) === '0' ? '1' : '0';
        record.text = `${record.text.slice(0, -1)}${last}`;
        return Buffer.from(JSON.stringify(record)).toString('base64url');
      };
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const failed = await client.chat.completions
        .create({ model: 'teeml-demo', messages, max_tokens: 4 })
        .catch((e: unknown) => e as { status?: number });
      expect((failed as { status?: number }).status).toBe(502);
      expect(gateway.counters).toMatchObject({ verified: 0, failed: 1 });
      expect(gateway.logs.join('')).toContain('signature.json.text');
      expect(lookups(proxy.seen)).toBe(0);
    } finally {
      await gateway.close();
      await proxy.close();
    }
  });

  it('a trailer that is not a record fails signature.record', async () => {
    const proxy = await startTrailerProxy(sidecar.url);
    const gateway = await startTestGateway(proxy.url);
    try {
      proxy.trailer = () => 'not*base64url';
      expect(await chat(gateway, true)).toBe('streamed');
      expect(gateway.counters).toMatchObject({ verified: 0, failed: 1 });
      expect(gateway.logs.join('')).toContain('signature.record');
      expect(lookups(proxy.seen)).toBe(0);
    } finally {
      await gateway.close();
      await proxy.close();
    }
  });
});

/** A TCP relay in front of the https sidecar that counts the connections (TLS handshakes) made to it. */
const startConnectionCounter = async (target: URL) => {
  const sockets: Socket[] = [];
  let connections = 0;
  /** Which side of each connection closed it first. */
  const closedFirst: Array<'gateway' | 'provider'> = [];
  const server = createTcpServer((client) => {
    connections += 1;
    const upstream = connect(Number(target.port), target.hostname);
    sockets.push(client, upstream);
    let closed = false;
    const note = (side: 'gateway' | 'provider') => () => {
      if (!closed) closedFirst.push(side);
      closed = true;
    };
    client.once('end', note('gateway'));
    upstream.once('end', note('provider'));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    closedFirst,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
};

describe('over attested TLS', () => {
  it('10 answers over one pooled pinned connection, each verified from its trailer; idle, the gateway closes it first', async () => {
    const tls = await startTestSidecar({ TLS_KEY_SOURCE: 'generate', TLS_HOSTNAMES: 'localhost,127.0.0.1' });
    const counter = await startConnectionCounter(new URL(tls.url));
    const direct = new DirectLink({ provider: counter.url });
    const fetched: string[] = [];
    // The real link; only its transport's calls (answers through `call`, lookups through `fetch`)
    // are noted on their way through.
    const link = new Proxy(direct, {
      get: (target, name) => {
        if (name === 'call') {
          const call = target.call;
          if (call === undefined) return undefined;
          return (url: URL, init: Parameters<typeof call>[1]) => {
            fetched.push(url.pathname);
            return call(url, init);
          };
        }
        if (name !== 'fetch') {
          const value = Reflect.get(target, name, target) as unknown;
          return typeof value === 'function' ? value.bind(target) : value;
        }
        const inner = target.fetch;
        if (inner === undefined) return undefined;
        return (input: string | URL | Request, init?: RequestInit) => {
          fetched.push(new URL(input instanceof Request ? input.url : String(input)).pathname);
          return inner(input, init);
        };
      },
    }) as ProviderLink;
    const gateway = await startTestGateway(counter.url, { link });
    try {
      const afterAttestation = counter.connections();
      expect(afterAttestation).toBe(1);
      for (let i = 0; i < 10; i += 1) await chat(gateway, i % 2 === 1);
      expect(gateway.counters).toMatchObject({ verified: 10, failed: 0 });
      // One new connection for all ten answers: pinned once, then reused.
      expect(counter.connections() - afterAttestation).toBe(1);
      expect(fetched.filter((p) => p.includes('/signature/'))).toHaveLength(0);
      expect(fetched.filter((p) => p.endsWith('/chat/completions'))).toHaveLength(10);
      // Idle, the pooled connection is closed by the gateway before the sidecar's keep-alive timeout
      // (5 s, announced as Keep-Alive: timeout=5): a request never goes out on a socket the sidecar
      // is closing.
      const closedBefore = counter.closedFirst.length;
      const until = Date.now() + 8000;
      while (counter.closedFirst.length === closedBefore && Date.now() < until)
        await new Promise((resolve) => setTimeout(resolve, 100));
      expect(counter.closedFirst.slice(closedBefore)).toEqual(['gateway']);
    } finally {
      await gateway.close();
      await counter.close();
      await tls.close();
    }
  });
});
