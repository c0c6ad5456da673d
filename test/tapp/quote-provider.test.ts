import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { SidecarError } from '../../src/errors/index.js';
import { TappClient } from '../../src/tapp/index.js';
import { TappQuoteProvider } from '../../src/tdx/tapp.js';
import { type FakeTapp, sha512, startFakeTapp, tappEvidence } from './tapp-server.js';

const SIGNER = `0x${'5e'.repeat(20)}`;
const REPORT_DATA = Uint8Array.from({ length: 64 }, (_, i) => (i * 7) & 0xff);

type Call = ServerUnaryCall<{ app_id: string; nonce: Buffer }, unknown>;

let tapp: FakeTapp | undefined;
const providers: TappQuoteProvider[] = [];
afterEach(async () => {
  for (const p of providers.splice(0)) await p.close();
  await tapp?.close();
  tapp = undefined;
});

const provider = (endpoint: string, timeoutMs = 5000): TappQuoteProvider => {
  const p = new TappQuoteProvider({ endpoint, appId: 'teeml-app', timeoutMs });
  providers.push(p);
  return p;
};

const answer = (evidence: Buffer) => ({
  success: true,
  message: 'ok',
  evidence,
  tee_type: 'TDX',
  timestamp: '1782700000',
});

describe('TappQuoteProvider against a real gRPC server', () => {
  it('returns a quote whose report_data is sha512(runtime_data), with runtime_data carrying our 64 bytes', async () => {
    const seen: { app_id: string; nonce: Buffer }[] = [];
    let made: ReturnType<typeof tappEvidence> | undefined;
    tapp = await startFakeTapp({
      GetEvidence: (call: Call, cb: sendUnaryData<unknown>) => {
        seen.push(call.request);
        made = tappEvidence(call.request.nonce, SIGNER);
        cb(null, answer(made.evidence));
      },
    });
    const p = provider(tapp.endpoint);
    expect(p.platform).toBe('tapp');
    const result = await p.getQuote(REPORT_DATA);
    expect(seen).toEqual([{ app_id: 'teeml-app', nonce: Buffer.from(REPORT_DATA) }]);
    expect(result.reportDataScheme).toBe('tapp-runtime-data-sha512');
    expect(Buffer.from(result.quote)).toEqual(made!.quote);
    const runtimeData = result.extra?.['runtime_data'] as string;
    expect(runtimeData).toBe(made!.runtimeData);
    // What a verifier does: hash the string's bytes, compare with the quote, find our bytes inside.
    expect(sha512(runtimeData)).toEqual(Buffer.from(result.quote).subarray(568, 632));
    expect(JSON.parse(runtimeData).nonce).toBe(`0x${Buffer.from(REPORT_DATA).toString('hex')}`);
    expect(result.extra).toMatchObject({
      report_data_scheme: 'tapp-runtime-data-sha512',
      tapp_signer: SIGNER,
      cc_eventlog: Buffer.from('ccel bytes').toString('base64'),
    });
    expect(result.info).toEqual({ app_id: 'teeml-app', tee_type: 'TDX', evidence_timestamp: '1782700000' });
  });

  it('works over host:port too', async () => {
    tapp = await startFakeTapp(
      {
        GetEvidence: (call: Call, cb: sendUnaryData<unknown>) =>
          cb(null, answer(tappEvidence(call.request.nonce, SIGNER).evidence)),
      },
      { tcp: true },
    );
    const result = await provider(tapp.endpoint).getQuote(REPORT_DATA);
    expect(result.quote.length).toBe(5006);
  });

  it('rejects a quote whose report_data is not sha512(runtime_data)', async () => {
    tapp = await startFakeTapp({
      GetEvidence: (call: Call, cb: sendUnaryData<unknown>) =>
        cb(
          null,
          answer(tappEvidence(call.request.nonce, SIGNER, { reportData: Buffer.alloc(64, 1) }).evidence),
        ),
    });
    const error = await provider(tapp.endpoint)
      .getQuote(REPORT_DATA)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SidecarError);
    expect(error).toMatchObject({
      status: 503,
      code: 'tapp_report_data_mismatch',
      message: "tapp GetEvidence failed: sha512(runtime_data) does not equal the quote's report_data",
    });
  });

  it('rejects evidence whose quote does not parse', async () => {
    tapp = await startFakeTapp({
      GetEvidence: (call: Call, cb: sendUnaryData<unknown>) => {
        const evidence = JSON.parse(tappEvidence(call.request.nonce, SIGNER).evidence.toString());
        evidence.quote = Buffer.alloc(100).toString('base64');
        cb(null, answer(Buffer.from(JSON.stringify(evidence))));
      },
    });
    await expect(provider(tapp.endpoint).getQuote(REPORT_DATA)).rejects.toMatchObject({
      status: 503,
      code: 'tapp_bad_response',
    });
  });

  it('rejects evidence made for another nonce', async () => {
    tapp = await startFakeTapp({
      GetEvidence: (_call: Call, cb: sendUnaryData<unknown>) =>
        cb(null, answer(tappEvidence(Buffer.alloc(64, 9), SIGNER).evidence)),
    });
    await expect(provider(tapp.endpoint).getQuote(REPORT_DATA)).rejects.toMatchObject({
      code: 'tapp_report_data_mismatch',
      message: 'tapp GetEvidence failed: runtime_data does not carry our nonce',
    });
  });

  it('rejects evidence without runtime_data (a Tapp that predates the nonce field)', async () => {
    tapp = await startFakeTapp({
      GetEvidence: (call: Call, cb: sendUnaryData<unknown>) => {
        const { evidence } = tappEvidence(call.request.nonce, SIGNER);
        const { runtime_data: _dropped, ...old } = JSON.parse(evidence.toString());
        cb(null, answer(Buffer.from(JSON.stringify(old))));
      },
    });
    await expect(provider(tapp.endpoint).getQuote(REPORT_DATA)).rejects.toMatchObject({
      code: 'tapp_no_runtime_data',
    });
  });

  it('rejects evidence that is not JSON, and a reported failure', async () => {
    let n = 0;
    tapp = await startFakeTapp({
      GetEvidence: (_call: Call, cb: sendUnaryData<unknown>) => {
        n += 1;
        if (n === 1) cb(null, answer(Buffer.from('garbage')));
        else cb(null, { success: false, message: 'app teeml-app not found' });
      },
    });
    const p = provider(tapp.endpoint);
    await expect(p.getQuote(REPORT_DATA)).rejects.toMatchObject({
      code: 'tapp_bad_response',
      message: 'tapp GetEvidence failed: evidence is not UTF-8 JSON (7 bytes)',
    });
    await expect(p.getQuote(REPORT_DATA)).rejects.toMatchObject({
      code: 'tapp_error',
      message: 'tapp GetEvidence failed: the service reported failure',
    });
  });

  it('a server that is down is 503 tapp_unavailable', async () => {
    tapp = await startFakeTapp({});
    const endpoint = tapp.endpoint;
    await tapp.close();
    tapp = undefined;
    await expect(provider(endpoint).getQuote(REPORT_DATA)).rejects.toMatchObject({
      status: 503,
      code: 'tapp_unavailable',
      message: 'tapp GetEvidence failed: gRPC status UNAVAILABLE',
    });
  });

  it('a server that does not answer hits the deadline', async () => {
    tapp = await startFakeTapp({
      GetEvidence: () => {
        /* never answers */
      },
    });
    await expect(provider(tapp.endpoint, 30).getQuote(REPORT_DATA)).rejects.toMatchObject({
      status: 503,
      code: 'tapp_timeout',
      message: 'tapp GetEvidence failed: no answer within 30 ms',
    });
  });

  it('an AbortSignal cancels the call', async () => {
    tapp = await startFakeTapp({
      GetEvidence: () => {
        /* never answers */
      },
    });
    const client = new TappClient({ endpoint: tapp.endpoint, timeoutMs: 5000 });
    try {
      const controller = new AbortController();
      const pending = client.getEvidence('teeml-app', REPORT_DATA, controller.signal);
      setTimeout(() => controller.abort(), 5);
      await expect(pending).rejects.toMatchObject({ code: 'tapp_aborted' });
    } finally {
      client.close();
    }
  });

  it('requires 64 bytes of report_data', async () => {
    await expect(provider('unix:///nonexistent/tapp.sock').getQuote(new Uint8Array(20))).rejects.toThrow(
      RangeError,
    );
  });
});
