import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifiedFetch } from '../../src/client/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { type Mitm, startMitm } from '../gateway/harness.js';

/**
 * close() aborts calls in flight (docs/client-api.md), including one whose request body was still
 * arriving when close() ran: it had no provider call yet, so it used to go to the provider after
 * close and come back verified.
 */ let sidecar: TestSidecar;
let mitm: Mitm;
beforeAll(async () => {
  sidecar = await startTestSidecar();
  mitm = await startMitm(sidecar.url);
});
afterAll(async () => {
  await mitm.close();
  await sidecar.close();
});

describe('close() and a call whose body is still arriving', () => {
  it('the call is not sent to the provider after close()', async () => {
    const vf = await createVerifiedFetch({
      provider: mitm.url,
      allowSimulated: true,
      e2ee: false,
      policy: { offline: true, requireE2ee: false },
    });
    const body = JSON.stringify({ model: 'teeml-demo', messages: [{ role: 'user', content: 'hi' }] });
    let finish: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      finish = r;
    });
    const stream = new ReadableStream<Uint8Array>({
      start: async (c) => {
        c.enqueue(new TextEncoder().encode(body.slice(0, 10)));
        await gate;
        c.enqueue(new TextEncoder().encode(body.slice(10)));
        c.close();
      },
    });
    const call = vf('http://teeml.invalid/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    await new Promise((r) => setTimeout(r, 100));
    mitm.seen.length = 0;
    await vf.close();
    finish();
    const res = await call;
    const text = await res.text();
    await new Promise((r) => setTimeout(r, 100));
    const sentAfterClose = mitm.seen.filter((s) => s.method === 'POST').length;
    expect({
      status: res.status,
      sentAfterClose,
      verification: res.headers.get('x-teeml-verification'),
    }).toEqual(expect.objectContaining({ sentAfterClose: 0 }));
    expect(res.status).not.toBe(200);
    expect(text).not.toContain('"choices"');
  });
});
