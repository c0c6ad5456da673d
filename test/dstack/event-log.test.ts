import { describe, expect, it } from 'vitest';
import {
  composeHash,
  DSTACK_RUNTIME_EVENT_TYPE,
  dstackIdentity,
  EventLogError,
  findRuntimeEvent,
  mrConfigIdBindsComposeHash,
  parseEventLog,
  replayRtmr,
  replayRtmrs,
  runtimeEventDigest,
} from '../../src/dstack/index.js';
import { hex, QUOTE_FIXTURES, quoteFields, readInfoFixture, readQuoteFixture } from './fixtures.js';

describe('RTMR replay against real dstack quotes', () => {
  for (const name of QUOTE_FIXTURES) {
    it(`replays RTMR0-3 of ${name} to the quote's values`, () => {
      const fixture = readQuoteFixture(name);
      const events = parseEventLog(fixture.event_log);
      const fields = quoteFields(fixture.quote);
      const replayed = replayRtmrs(events);
      expect(replayed.map(hex)).toEqual(fields.rtmrs.map(hex));
    });
  }

  it('recomputes the lite fixture, whose RTMR3 digests are all empty', () => {
    const fixture = readQuoteFixture('dstack/verifier-fixtures/tdx-lite-getquote.json');
    const events = parseEventLog(fixture.event_log);
    const rtmr3 = events.filter((e) => e.imr === 3);
    expect(rtmr3.length).toBeGreaterThan(5);
    expect(rtmr3.every((e) => e.digest === '')).toBe(true);
    expect(hex(replayRtmrs(events)[3])).toBe(hex(quoteFields(fixture.quote).rtmrs[3]!));
  });

  it('matches the digests dstack sent where it sent them', () => {
    const fixture = readQuoteFixture('dstack/verifier-fixtures/quote-report.json');
    const events = parseEventLog(fixture.event_log).filter((e) => e.event_type === DSTACK_RUNTIME_EVENT_TYPE);
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) {
      const digest = runtimeEventDigest(e.event_type, e.event, Buffer.from(e.event_payload, 'hex'));
      expect(hex(digest)).toBe(e.digest);
    }
  });

  it('refuses a runtime event whose given digest does not match its content', () => {
    const fixture = readQuoteFixture('dstack/nearai-sample/SAMPLE_DSTACK_QUOTE.json');
    const events = parseEventLog(fixture.event_log);
    const i = events.findIndex((e) => e.event === 'compose-hash');
    events[i] = { ...events[i]!, event_payload: 'ff'.repeat(32) };
    expect(() => replayRtmrs(events)).toThrow(/digest does not match/);
  });

  it('changes RTMR3 when a payload is changed in the lite log (no digest to catch it)', () => {
    const fixture = readQuoteFixture('dstack/verifier-fixtures/tdx-lite-getquote.json');
    const events = parseEventLog(fixture.event_log);
    const i = events.findIndex((e) => e.event === 'compose-hash');
    events[i] = { ...events[i]!, event_payload: '00'.repeat(32) };
    expect(hex(replayRtmrs(events)[3])).not.toBe(hex(quoteFields(fixture.quote).rtmrs[3]!));
  });

  it('replays from 48 zero bytes', () => {
    expect(hex(replayRtmr([]))).toBe('00'.repeat(48));
  });
});

describe('parseEventLog', () => {
  it('accepts the JSON string and the parsed list alike', () => {
    const fixture = readQuoteFixture('dstack/verifier-fixtures/quote-report.json');
    expect(parseEventLog(JSON.parse(fixture.event_log))).toEqual(parseEventLog(fixture.event_log));
  });

  it('rejects garbage, naming the place but not the content', () => {
    expect(() => parseEventLog('not json')).toThrow(EventLogError);
    expect(() =>
      parseEventLog([{ imr: 7, event_type: 1, digest: '', event: '', event_payload: '' }]),
    ).toThrow(/0\.imr/);
    expect(() =>
      parseEventLog([{ imr: 3, event_type: 1, digest: 'zz', event: 'secret', event_payload: '' }]),
    ).toThrow(/^(?!.*secret).*0\.digest/);
  });

  it('refuses a boot event with a short digest', () => {
    expect(() =>
      replayRtmrs(parseEventLog([{ imr: 0, event_type: 1, digest: 'abcd', event: '', event_payload: '' }])),
    ).toThrow(/48 bytes/);
  });
});

describe('identity events and the compose hash', () => {
  it('extracts app-id, compose-hash, instance-id, os-image-hash and key-provider', () => {
    const fixture = readQuoteFixture('dstack/nearai-sample/SAMPLE_DSTACK_QUOTE.json');
    const info = readInfoFixture();
    const id = dstackIdentity(parseEventLog(fixture.event_log));
    expect(id.appId).toBe(info['app_id']);
    expect(id.composeHash).toBe(info['compose_hash']);
    expect(id.instanceId).toBe(info['instance_id']);
    expect(id.osImageHash).toBe(info['os_image_hash']);
    expect(JSON.parse(id.keyProvider!)).toMatchObject({ name: 'kms' });
  });

  it('binds SAMPLE_DSTACK_INFO: app_compose → compose_hash → mrconfigid, and mrtd/rtmrs equal the quote', () => {
    const info = readInfoFixture();
    const tcb = info['tcb_info'] as Record<string, string>;
    const fields = quoteFields(readQuoteFixture('dstack/nearai-sample/SAMPLE_DSTACK_QUOTE.json').quote);
    const hash = composeHash(tcb['app_compose']!);
    expect(hex(hash)).toBe(tcb['compose_hash']);
    expect(hex(hash)).toBe(info['compose_hash']);
    expect(mrConfigIdBindsComposeHash(fields.mrconfigid, hash)).toBe(true);
    expect(tcb['mrtd']).toBe(hex(fields.mrtd));
    expect([tcb['rtmr0'], tcb['rtmr1'], tcb['rtmr2'], tcb['rtmr3']]).toEqual(fields.rtmrs.map(hex));
    // The event log inside tcb_info (a list, not a string) replays to the same registers.
    expect(replayRtmrs(parseEventLog(tcb['event_log'])).map(hex)).toEqual(fields.rtmrs.map(hex));
  });

  it('binds the lite fixture compose-hash event to its mrconfigid', () => {
    const fixture = readQuoteFixture('dstack/verifier-fixtures/tdx-lite-getquote.json');
    const id = dstackIdentity(parseEventLog(fixture.event_log));
    const mrconfigid = quoteFields(fixture.quote).mrconfigid;
    expect(mrConfigIdBindsComposeHash(mrconfigid, Buffer.from(id.composeHash!, 'hex'))).toBe(true);
    expect(mrConfigIdBindsComposeHash(mrconfigid, new Uint8Array(32))).toBe(false);
  });

  it('reports an older CVM whose mrconfigid is all zero as not binding', () => {
    const fixture = readQuoteFixture('dstack/verifier-fixtures/quote-report.json');
    const id = dstackIdentity(parseEventLog(fixture.event_log));
    expect(
      mrConfigIdBindsComposeHash(quoteFields(fixture.quote).mrconfigid, Buffer.from(id.composeHash!, 'hex')),
    ).toBe(false);
  });

  it('hashes bytes exactly: a re-serialized compose gives another hash', () => {
    const tcb = readInfoFixture()['tcb_info'] as Record<string, string>;
    const reserialized = JSON.stringify(JSON.parse(tcb['app_compose']!));
    expect(hex(composeHash(reserialized))).not.toBe(tcb['compose_hash']);
    expect(hex(composeHash(new TextEncoder().encode(tcb['app_compose']!)))).toBe(tcb['compose_hash']);
  });

  it('refuses a duplicated identity event (an app-emitted event must not shadow the measured one)', () => {
    const events = parseEventLog(readQuoteFixture('dstack/nearai-sample/SAMPLE_DSTACK_QUOTE.json').event_log);
    const original = events.find((e) => e.event === 'compose-hash')!;
    events.push({ ...original, digest: '', event_payload: '11'.repeat(32) });
    expect(() => findRuntimeEvent(events, 'compose-hash')).toThrow(/occurs 2 times/);
    expect(() => dstackIdentity(events)).toThrow(EventLogError);
  });
});
