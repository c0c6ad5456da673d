import { createHash } from 'node:crypto';
import { Agent, request } from 'node:http';
import { hashMessage, recoverAddress } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  json,
  rawRequest,
  startTestSidecar,
  startUpstream,
  type TestSidecar,
  type TestUpstream,
} from '../e2e/harness.js';

/**
 * A bounded soak on loopback: a few thousand mixed requests (JSON, streams, clients that drop out
 * mid-stream), 32 at a time. Every response that completed must have a signature that recomputes
 * from the bytes on the wire; none of the dropped ones may; memory must stay flat; nothing may be
 * left in flight. Bounded by count, not time; no timing assertions.
 */
const TOTAL = 3000;
const CONCURRENCY = 32;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let upstream: TestUpstream;
let sidecar: TestSidecar;

beforeAll(async () => {
  let n = 0;
  upstream = await startUpstream((_req, body, res) => {
    const id = `chatcmpl-soak${(n++).toString(36)}`;
    const { stream } = JSON.parse(body.toString()) as { stream?: boolean };
    if (!stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id,
          object: 'chat.completion',
          choices: [{ index: 0, message: { content: 'ok' } }],
        }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let i = 0;
    const tick = (): void => {
      if (res.destroyed) return;
      if (i++ < 20) {
        res.write(`data: {"id":"${id}","choices":[{"delta":{"content":"t${i}"}}]}\n\n`);
        setImmediate(tick);
      } else {
        res.end('data: [DONE]\n\n');
      }
    };
    tick();
  });
  sidecar = await startTestSidecar({
    UPSTREAM_URL: upstream.url,
    LOG_LEVEL: 'warn',
    SIGNATURE_CAPACITY: '100000',
  });
});
afterAll(async () => {
  await sidecar.close();
  await upstream.close();
});

type Outcome =
  | { kind: 'done'; sent: string; body: Buffer; id: string }
  | { kind: 'dropped'; id: string | undefined };

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

const one = (i: number): Promise<Outcome> => {
  const stream = i % 2 === 1;
  const drop = stream && i % 10 === 3;
  const sent = JSON.stringify({ model: 'm', stream, messages: [{ role: 'user', content: `q${i}` }] });
  return new Promise((resolve, reject) => {
    const req = request(
      `${sidecar.url}/v1/chat/completions`,
      { method: 'POST', agent: drop ? false : agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        const id = res.headers['zg-res-key'] as string | undefined;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          if (drop && chunks.length === 1) {
            req.destroy();
            resolve({ kind: 'dropped', id });
          }
        });
        res.on('end', () => {
          if (!drop) resolve({ kind: 'done', sent, body: Buffer.concat(chunks), id: id ?? '' });
        });
        res.on('error', () => drop || reject(new Error('response error')));
      },
    );
    req.on('error', (err) => (drop ? undefined : reject(err)));
    req.end(sent);
  });
};

describe('soak', () => {
  it('loses no signature for completed responses, signs no dropped ones, and stays flat', {
    timeout: 180_000,
  }, async () => {
    const outcomes: Outcome[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < TOTAL) outcomes.push(await one(next++));
    };
    // Warm up, then measure memory around the main run.
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(typeof gc).toBe('function');
    gc?.();
    const heapAfterFirst = process.memoryUsage().heapUsed;
    next = 0;
    outcomes.length = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    gc?.();
    const heapAfterSecond = process.memoryUsage().heapUsed;

    const done = outcomes.filter((o): o is Extract<Outcome, { kind: 'done' }> => o.kind === 'done');
    const dropped = outcomes.filter((o) => o.kind === 'dropped');
    let found = 0;
    for (const o of done) {
      const sig = json<{ text: string; signature: string }>(
        await rawRequest(`${sidecar.url}/v1/signature/${o.id}`),
      );
      expect(sig.text).toBe(`${sha(o.sent)}:${sha(o.body)}`);
      found++;
    }
    // Spot-check signatures cryptographically (all would take a while on 2 cores).
    for (const o of done.slice(0, 50)) {
      const sig = json<{ text: string; signature: string }>(
        await rawRequest(`${sidecar.url}/v1/signature/${o.id}`),
      );
      expect(recoverAddress(hashMessage(sig.text), sig.signature)).toBe(sidecar.signingAddress);
    }
    let droppedSigned = 0;
    for (const o of dropped) {
      if (o.id !== undefined && (await rawRequest(`${sidecar.url}/v1/signature/${o.id}`)).status === 200)
        droppedSigned++;
    }
    const metrics = (await rawRequest(`${sidecar.url}/metrics`)).body.toString();
    agent.destroy();
    process.stdout.write(
      `soak: sent ${TOTAL} (second pass), completed ${done.length}, dropped ${dropped.length}, ` +
        `signatures expected ${done.length}, found ${found}, dropped-but-signed ${droppedSigned}, ` +
        `heap ${(heapAfterFirst / 1e6).toFixed(1)} MB -> ${(heapAfterSecond / 1e6).toFixed(1)} MB\n`,
    );
    expect(done.length + dropped.length).toBe(TOTAL);
    expect(dropped.length).toBe(TOTAL / 10 / 1);
    expect(found).toBe(done.length);
    expect(droppedSigned).toBe(0);
    expect(metrics).toMatch(/^teeml_proxy_in_flight 0$/m);
    // Flat: after a full GC, a second pass of the same load leaves only its 2,700 new records (~0.4 KB
    // each, kept until their TTL) and nothing else that grows.
    expect(heapAfterSecond - heapAfterFirst).toBeLessThan(10e6);
  });
});
