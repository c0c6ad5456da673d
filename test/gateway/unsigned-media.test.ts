import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSidecar, startUpstream, type TestSidecar, type TestUpstream } from '../e2e/harness.js';
import { startTestGateway } from './harness.js';

/**
 * A 2xx that is neither JSON nor an event stream (a transcription as text, speech audio) is relayed
 * unsigned by the sidecar, by design (docs/protocol.md, Routes). The gateway passes it on marked
 * `unsigned` and keeps serving: one such answer used to fail `answer.id` and open the circuit for
 * every later call. On the chat, completion and embedding routes a non-JSON answer is still a
 * failed verification: those answers are always signed.
 */
let upstream: TestUpstream;
let sidecar: TestSidecar;

beforeAll(async () => {
  upstream = await startUpstream((req, body, res) => {
    if (req.url?.includes('/audio/transcriptions') || body.toString().includes('relabelled')) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('hello world');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        id: `chatcmpl-${Math.random().toString(36).slice(2)}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: 'teeml-demo',
        choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
      }),
    );
  });
  sidecar = await startTestSidecar({ UPSTREAM_URL: upstream.url });
});

afterAll(async () => {
  await sidecar.close();
  await upstream.close();
});

const chat = (url: string) =>
  fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'teeml-demo', messages: [{ role: 'user', content: 'hi' }] }),
  });

describe('a non-JSON 2xx answer the sidecar leaves unsigned', () => {
  it('passes marked unsigned, counts as unsigned, and leaves the circuit closed', async () => {
    // E2EE off: under E2EE a multipart upload is refused before it is sent (e2ee_unsupported_endpoint).
    const gateway = await startTestGateway(sidecar.url, { e2ee: { mode: 'off' } });
    try {
      const form = new FormData();
      form.set('model', 'teeml-demo');
      form.set('response_format', 'text');
      form.set('file', new Blob([new Uint8Array(16)], { type: 'audio/wav' }), 'a.wav');
      const t = await fetch(`${gateway.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
      expect(t.status).toBe(200);
      expect(t.headers.get('x-teeml-verification')).toBe('unsigned');
      expect(await t.text()).toBe('hello world');
      expect(gateway.circuit().open).toBe(false);
      expect(gateway.counters.failed).toBe(0);
      const later = await chat(gateway.url);
      expect(later.status).toBe(200);
      expect(later.headers.get('x-teeml-verification')).toBe('verified');
      await later.arrayBuffer();
    } finally {
      await gateway.close();
    }
  });

  it('a transcription asked as a stream is never media, whatever its label', async () => {
    const gateway = await startTestGateway(sidecar.url, { e2ee: { mode: 'off' } });
    try {
      const form = new FormData();
      form.set('model', 'teeml-demo');
      form.set('stream', 'true');
      form.set('file', new Blob([new Uint8Array(16)], { type: 'audio/wav' }), 'a.wav');
      const t = await fetch(`${gateway.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
      await t.arrayBuffer();
      expect(t.headers.get('x-teeml-verification')).not.toBe('unsigned');
      expect(t.headers.get('x-teeml-verification')).not.toBe('verified');
    } finally {
      await gateway.close();
    }
  });

  it('on a chat route, the same kind of answer is a failed verification, not an unsigned pass', async () => {
    const gateway = await startTestGateway(sidecar.url, { e2ee: { mode: 'off' } });
    try {
      // A man in the middle's relabelling: the provider path answers text/plain to a chat request.
      const res = await fetch(`${gateway.url}/v1/chat/completions/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'teeml-demo', messages: [{ role: 'user', content: 'relabelled' }] }),
      });
      await res.arrayBuffer();
      expect(res.headers.get('x-teeml-verification')).not.toBe('unsigned');
      expect(res.headers.get('x-teeml-verification')).not.toBe('verified');
    } finally {
      await gateway.close();
    }
  });
});
