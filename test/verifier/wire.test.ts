import { describe, expect, it } from 'vitest';
import { fetchWire, MAX_WIRE_BYTES } from '../../src/verifier/wire.js';

const MB = 1024 * 1024;

/** A fetch answering with a body streamed in 1 MiB chunks, counting how many were pulled. */
const streaming = (totalBytes: number, headers: Record<string, string> = {}) => {
  const seen = { pulled: 0 };
  const fetch = async () =>
    new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          if (seen.pulled * MB >= totalBytes) return controller.close();
          seen.pulled++;
          controller.enqueue(new Uint8Array(MB));
        },
      }),
      { status: 200, headers },
    );
  return { fetch: fetch as unknown as typeof globalThis.fetch, seen };
};

describe('fetchWire', () => {
  it('keeps the exact bytes of an answer within the limit', async () => {
    const fetch = (async () =>
      new Response('{"a": 1}', { status: 201 })) as unknown as typeof globalThis.fetch;
    const answer = await fetchWire(fetch, 'http://provider/v1/x');
    expect(answer.status).toBe(201);
    expect(new TextDecoder().decode(answer.body)).toBe('{"a": 1}');
  });

  it('stops reading an answer that grows past the limit, instead of buffering it whole', async () => {
    const { fetch, seen } = streaming(MAX_WIRE_BYTES * 2);
    await expect(fetchWire(fetch, 'http://provider/v1/attestation/report')).rejects.toThrow(
      `answer from /v1/attestation/report exceeds ${MAX_WIRE_BYTES} bytes`,
    );
    expect(seen.pulled * MB).toBeLessThan(MAX_WIRE_BYTES + 4 * MB);
  });

  it('refuses a declared length over the limit before reading', async () => {
    const { fetch, seen } = streaming(MB, { 'content-length': String(MAX_WIRE_BYTES + 1) });
    await expect(fetchWire(fetch, 'http://provider/v1/x')).rejects.toThrow(/exceeds/);
    expect(seen.pulled).toBeLessThanOrEqual(1);
  });
});
