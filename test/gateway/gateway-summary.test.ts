import { describe, expect, it } from 'vitest';
import type { Attestation } from '../../src/gateway/index.js';
import { summarize } from '../../src/gateway/index.js';

const AT = Date.parse('2026-01-02T03:04:05.000Z');
const NEXT = AT + 30_000;

const attestation = (extra: Partial<Attestation> = {}): Attestation => ({
  ok: true,
  fresh: true,
  nonce: '00'.repeat(32),
  at: AT,
  source: 'test',
  checks: [{ id: 'tdx.quote', title: 'quote', status: 'pass', detail: 'ok' }],
  identity: { platform: 'tdx', simulated: false, measurements: {}, tcbStatus: 'UpToDate', gpus: [] },
  ...extra,
});

const base = {
  circuit: { open: false },
  reachability: { ok: true, at: AT },
  onFailure: 'refuse' as const,
  nextAttestationAt: NEXT,
};

/** The order of the states: the real-browser test drives each through a gateway; these pin the edges. */
describe('summarize', () => {
  it('says verified only of a passed, non-simulated attestation, with the circuit closed and the provider reached', () => {
    expect(summarize({ ...base, current: attestation() })).toEqual({
      state: 'verified',
      tone: 'ok',
      words: 'verified',
      serving: true,
    });
    const simulated = attestation({
      identity: { platform: 'simulated', simulated: true, measurements: {}, tcbStatus: 'x', gpus: [] },
    });
    expect(summarize({ ...base, current: simulated })).toMatchObject({ state: 'simulated', tone: 'warn' });
  });

  it('names the unreachable provider before the report.fetch it caused, with the retry time', () => {
    const failed = attestation({
      ok: false,
      failedCheck: 'report.fetch',
      checks: [
        { id: 'report.fetch', title: 'fetched', status: 'fail', detail: 'request failed: fetch failed' },
      ],
    });
    const reachability = { ok: false, at: AT + 5000, since: AT, detail: 'ECONNREFUSED' };
    expect(summarize({ ...base, current: failed, reachability }).words).toBe(
      'provider unreachable since 2026-01-02T03:04:05.000Z (ECONNREFUSED), retrying at 2026-01-02T03:04:35.000Z',
    );
  });

  it('says what a refusal is about, and a circuit only when it refuses', () => {
    const failed = attestation({
      ok: false,
      failedCheck: 'report.nonce',
      checks: [{ id: 'report.nonce', title: 'nonce', status: 'fail', detail: 'another nonce' }],
    });
    expect(summarize({ ...base, current: failed }).words).toBe(
      'refusing: report.nonce — another nonce, retrying at 2026-01-02T03:04:35.000Z',
    );
    const circuit = {
      open: true,
      check: 'signature.json.text',
      answerId: 'chatcmpl-1',
      detail: 'differs',
      since: AT,
    };
    expect(summarize({ ...base, current: attestation(), circuit })).toMatchObject({
      state: 'circuit_open',
      serving: false,
      words:
        'circuit open after answer chatcmpl-1: signature.json.text — differs — until the next attestation at 2026-01-02T03:04:35.000Z',
    });
    expect(summarize({ ...base, current: attestation(), circuit, onFailure: 'warn' }).state).toBe('verified');
    expect(summarize({ ...base, current: undefined })).toMatchObject({ state: 'attesting', serving: false });
  });
});
