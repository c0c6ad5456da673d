import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { SidecarError } from '../../src/errors/index.js';
import { DstackQuoteProvider } from '../../src/tdx/dstack.js';
import { sharedFixtures } from '../paths.js';
import { type FakeAgent, sendJson, startFakeAgent } from './agent-server.js';
import { readQuoteFixture } from './fixtures.js';

const QUOTE = readFileSync(sharedFixtures('dstack/verifier-fixtures/quote-report.json'));
const INFO = readFileSync(sharedFixtures('dstack/nearai-sample/SAMPLE_DSTACK_INFO.json'));
// The fixture was made for report_data 0x1234 ‖ zeros; asking with it makes the agent's echo match.
const REPORT_DATA = Uint8Array.from(
  Buffer.from(readQuoteFixture('dstack/verifier-fixtures/quote-report.json').report_data!, 'hex'),
);

let agent: FakeAgent | undefined;
afterEach(async () => {
  await agent?.close();
  agent = undefined;
});

describe('DstackQuoteProvider', () => {
  it('returns the quote bytes, the event log as a list, /Info and vm_config', async () => {
    const fixture = readQuoteFixture('dstack/verifier-fixtures/quote-report.json');
    agent = await startFakeAgent((req, res) => sendJson(res, req.path === '/Info' ? INFO : QUOTE));
    const provider = new DstackQuoteProvider({ socketPath: agent.socketPath, timeoutMs: 5000 });
    expect(provider.platform).toBe('dstack');
    expect(provider.simulated).toBe(false);
    const result = await provider.getQuote(REPORT_DATA);
    expect(Buffer.from(result.quote).toString('hex')).toBe(fixture.quote);
    expect(result.eventLog).toEqual(JSON.parse(fixture.event_log));
    expect(result.info).toEqual(JSON.parse(INFO.toString('utf8')));
    expect(result.reportDataScheme).toBe('raw');
    expect(result.extra).toEqual({ vm_config: fixture.vm_config });
    expect(JSON.parse(agent.requests[0]!.body.toString())).toEqual({
      report_data: Buffer.from(REPORT_DATA).toString('hex'),
    });
  });

  it('serves tcb_info parsed when the agent sends it as a JSON string, app_compose byte for byte', async () => {
    const info = JSON.parse(INFO.toString('utf8')) as Record<string, unknown>;
    const tcb = info['tcb_info'] as Record<string, unknown>;
    // The guest agent's /Info sends tcb_info as a string of JSON; the 0G SDK reads it as an object.
    const asAgentSends = Buffer.from(JSON.stringify({ ...info, tcb_info: JSON.stringify(tcb) }));
    agent = await startFakeAgent((req, res) => sendJson(res, req.path === '/Info' ? asAgentSends : QUOTE));
    const provider = new DstackQuoteProvider({ socketPath: agent.socketPath, timeoutMs: 5000 });
    const result = await provider.getQuote(REPORT_DATA);
    expect(result.info['tcb_info']).toEqual(tcb);
    expect((result.info['tcb_info'] as Record<string, unknown>)['app_compose']).toBe(tcb['app_compose']);
  });

  it('caches /Info after its first success, and does not cache a failure', async () => {
    let infoCalls = 0;
    agent = await startFakeAgent((req, res) => {
      if (req.path !== '/Info') return sendJson(res, QUOTE);
      infoCalls += 1;
      return infoCalls === 1 ? sendJson(res, 'down', 503) : sendJson(res, INFO);
    });
    const provider = new DstackQuoteProvider({ socketPath: agent.socketPath });
    await expect(provider.getQuote(REPORT_DATA)).rejects.toMatchObject({ code: 'dstack_unavailable' });
    await provider.getQuote(REPORT_DATA);
    await provider.getQuote(REPORT_DATA);
    expect(infoCalls).toBe(2);
  });

  it('fails closed when the agent used other report_data', async () => {
    agent = await startFakeAgent((req, res) => sendJson(res, req.path === '/Info' ? INFO : QUOTE));
    const provider = new DstackQuoteProvider({ socketPath: agent.socketPath });
    const error = await provider.getQuote(new Uint8Array(64).fill(7)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SidecarError);
    expect(error).toMatchObject({ status: 503, code: 'dstack_report_data_mismatch' });
  });

  it('fails closed when the quote itself carries other report_data (no echo to compare)', async () => {
    const { report_data: _echo, ...noEcho } = JSON.parse(QUOTE.toString('utf8'));
    agent = await startFakeAgent((req, res) => sendJson(res, req.path === '/Info' ? INFO : noEcho));
    const provider = new DstackQuoteProvider({ socketPath: agent.socketPath });
    await expect(provider.getQuote(new Uint8Array(64).fill(7))).rejects.toMatchObject({
      status: 503,
      code: 'tee_bad_quote',
    });
  });

  it('turns a malformed event log into 503 dstack_bad_response', async () => {
    const broken = { ...JSON.parse(QUOTE.toString('utf8')), event_log: '[{"imr":9}]' };
    agent = await startFakeAgent((req, res) => sendJson(res, req.path === '/Info' ? INFO : broken));
    const provider = new DstackQuoteProvider({ socketPath: agent.socketPath });
    await expect(provider.getQuote(REPORT_DATA)).rejects.toMatchObject({
      status: 503,
      code: 'dstack_bad_response',
      message: expect.stringMatching(/^dstack GetQuote failed: event log is malformed at 0\.imr/),
    });
  });

  it('requires exactly 64 bytes of report_data', async () => {
    const provider = new DstackQuoteProvider({ socketPath: '/nonexistent/dstack.sock' });
    await expect(provider.getQuote(new Uint8Array(32))).rejects.toThrow(RangeError);
  });
});
