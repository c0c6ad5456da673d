import { equalBytes, toHex } from '../bytes/index.js';
import {
  composeHash,
  type DstackEvent,
  dstackIdentity,
  eventDigest,
  mrConfigIdBindsComposeHash,
  parseEventLog,
  replayRtmr,
} from '../dstack/index.js';
import type { ParsedQuote } from '../tdx/index.js';
import type { CheckList } from './check-list.js';
import { type AttestationView, normalizeHex } from './report-shape.js';
import type { MeasurementAllowLists } from './types.js';

const errorText = (error: unknown): string => (error instanceof Error ? error.message : 'unknown error');

export interface DstackExpectations {
  expectedComposeHash?: string;
  composeFile?: Uint8Array;
  allow?: MeasurementAllowLists;
}

/**
 * The Dstack checks (docs/platforms.md, "Dstack event log"):
 * - `dstack.rtmr3`: RTMR3 replayed from the log, every runtime digest recomputed from its name and
 *   payload (never taken from the log), equals the quote's RTMR3.
 * - `dstack.rtmr0-2`: boot registers replayed where the log has their events. Their digests cannot
 *   be recomputed (the measured data is not in the log), so this only shows the log is the one
 *   that produced the quote's values.
 * - `dstack.compose-hash`: the RTMR3 `compose-hash` event equals MRCONFIGID's compose hash, the
 *   hash of `info.tcb_info.app_compose` when present, and the caller's expected hash or file.
 * - `dstack.os-image`: the RTMR3 `os-image-hash` event is on the caller's allow-list.
 * Facts from the log are used only after RTMR3 replays: an unbound log proves nothing.
 */
export const checkDstack = (
  list: CheckList,
  report: AttestationView,
  parsed: ParsedQuote,
  expect: DstackExpectations,
): void => {
  const expectedHash = expectedComposeHash(expect);
  const wantsCompose = expectedHash !== undefined;
  const wantsOsImage = (expect.allow?.osImageHash ?? []).length > 0;
  const raw = report.event_log;
  const empty = raw === undefined || (Array.isArray(raw) && raw.length === 0) || raw === '' || raw === '[]';
  if (empty) {
    const why = `no event log in the report (platform ${report.platform ?? 'unknown'})`;
    list.skip('dstack.rtmr3', 'RTMR3 replays from the event log', why);
    list.skip('dstack.rtmr0-2', 'RTMR0-2 replay from the event log', why);
    if (wantsCompose)
      list.fail('dstack.compose-hash', COMPOSE_TITLE, `${why}: cannot check the expected compose hash`);
    else list.skip('dstack.compose-hash', COMPOSE_TITLE, why);
    if (wantsOsImage) list.fail('dstack.os-image', OS_TITLE, `${why}: cannot check the OS image hash`);
    else list.skip('dstack.os-image', OS_TITLE, 'no allow-list given (--os-image-hash)');
    return;
  }

  let events: DstackEvent[] | undefined;
  let rtmr3Bound = false;
  try {
    events = parseEventLog(raw);
    const digests = events.filter((e) => e.imr === 3).map((e, i) => eventDigest(e, i));
    const replayed = replayRtmr(digests);
    if (equalBytes(replayed, parsed.report.rtmr3)) {
      rtmr3Bound = true;
      list.pass(
        'dstack.rtmr3',
        'RTMR3 replays from the event log',
        `${digests.length} events, digests recomputed`,
      );
    } else {
      list.fail(
        'dstack.rtmr3',
        'RTMR3 replays from the event log',
        "replayed RTMR3 differs from the quote's RTMR3",
      );
    }
  } catch (error) {
    list.fail('dstack.rtmr3', 'RTMR3 replays from the event log', errorText(error));
  }

  checkBootRegisters(list, events, parsed);
  checkCompose(list, report, parsed, events, rtmr3Bound, expectedHash);
  checkOsImage(list, events, rtmr3Bound, expect.allow?.osImageHash);
};

const COMPOSE_TITLE = 'compose hash is bound (RTMR3 event, MRCONFIGID, app_compose, expected)';
const OS_TITLE = 'OS image hash is on the allow-list';

const expectedComposeHash = (expect: DstackExpectations): { hex: string; source: string } | undefined => {
  if (expect.composeFile !== undefined)
    return { hex: toHex(composeHash(expect.composeFile)), source: 'compose file' };
  if (expect.expectedComposeHash !== undefined)
    return { hex: normalizeHex(expect.expectedComposeHash), source: 'expected hash' };
  return undefined;
};

const checkBootRegisters = (
  list: CheckList,
  events: DstackEvent[] | undefined,
  parsed: ParsedQuote,
): void => {
  const id = 'dstack.rtmr0-2';
  const title = 'RTMR0-2 replay from the event log';
  if (events === undefined) {
    list.fail(id, title, 'event log unreadable');
    return;
  }
  const quoteValues = [parsed.report.rtmr0, parsed.report.rtmr1, parsed.report.rtmr2];
  const present = [0, 1, 2].filter((imr) => events.some((e) => e.imr === imr));
  if (present.length === 0) {
    list.skip(id, title, 'the event log has no RTMR0-2 events');
    return;
  }
  try {
    const bad = present.filter((imr) => {
      const replayed = replayRtmr(events.filter((e) => e.imr === imr).map((e, i) => eventDigest(e, i)));
      return !equalBytes(replayed, quoteValues[imr] as Uint8Array);
    });
    if (bad.length === 0)
      list.pass(id, title, `RTMR${present.join(', RTMR')} match (boot digests as logged)`);
    else list.fail(id, title, `replay differs from the quote for RTMR${bad.join(', RTMR')}`);
  } catch (error) {
    list.fail(id, title, errorText(error));
  }
};

const checkCompose = (
  list: CheckList,
  report: AttestationView,
  parsed: ParsedQuote,
  events: DstackEvent[] | undefined,
  rtmr3Bound: boolean,
  expected: { hex: string; source: string } | undefined,
): void => {
  const id = 'dstack.compose-hash';
  if (events === undefined || !rtmr3Bound) {
    list.fail(
      id,
      COMPOSE_TITLE,
      'the event log is not bound to the quote (RTMR3), so its compose hash proves nothing',
    );
    return;
  }
  let eventHash: string | undefined;
  try {
    eventHash = dstackIdentity(events).composeHash;
  } catch (error) {
    list.fail(id, COMPOSE_TITLE, errorText(error));
    return;
  }
  if (eventHash === undefined) {
    if (expected !== undefined)
      list.fail(id, COMPOSE_TITLE, 'no compose-hash event in RTMR3 to compare with');
    else list.skip(id, COMPOSE_TITLE, 'no compose-hash event in RTMR3');
    return;
  }
  const notes: string[] = [`compose hash ${eventHash}`];
  const problems: string[] = [];
  const mrConfigId = parsed.report.mrConfigId;
  if (mrConfigId.every((b) => b === 0)) notes.push('MRCONFIGID unset (older Dstack)');
  else if (mrConfigIdBindsComposeHash(mrConfigId, new Uint8Array(Buffer.from(eventHash, 'hex'))))
    notes.push('MRCONFIGID matches');
  else problems.push('MRCONFIGID does not carry the RTMR3 compose hash');

  const rawTcbInfo = report.info?.['tcb_info'];
  // Served parsed; some providers pass the agent's JSON string on as it came.
  const tcbInfo = typeof rawTcbInfo === 'string' ? safeJson(rawTcbInfo) : rawTcbInfo;
  const appCompose =
    typeof tcbInfo === 'object' && tcbInfo !== null
      ? (tcbInfo as Record<string, unknown>)['app_compose']
      : undefined;
  if (typeof appCompose === 'string') {
    if (toHex(composeHash(appCompose)) === eventHash) notes.push('info.tcb_info.app_compose matches');
    else problems.push('sha256(info.tcb_info.app_compose) differs from the RTMR3 compose hash');
  }
  const infoHash = report.info?.['compose_hash'];
  if (typeof infoHash === 'string' && normalizeHex(infoHash) !== eventHash) {
    problems.push('info.compose_hash differs from the RTMR3 compose hash');
  }
  if (expected !== undefined) {
    if (expected.hex === eventHash) notes.push(`${expected.source} matches`);
    else problems.push(`RTMR3 compose hash is not the ${expected.source}'s (${expected.hex})`);
  }
  if (problems.length === 0) list.pass(id, COMPOSE_TITLE, notes.join('; '));
  else list.fail(id, COMPOSE_TITLE, problems.join('; '));
};

const checkOsImage = (
  list: CheckList,
  events: DstackEvent[] | undefined,
  rtmr3Bound: boolean,
  allowed: readonly string[] | undefined,
): void => {
  const id = 'dstack.os-image';
  if (allowed === undefined || allowed.length === 0) {
    list.skip(id, OS_TITLE, 'no allow-list given (--os-image-hash)');
    return;
  }
  if (events === undefined || !rtmr3Bound) {
    list.fail(id, OS_TITLE, 'the event log is not bound to the quote (RTMR3)');
    return;
  }
  let hash: string | undefined;
  try {
    hash = dstackIdentity(events).osImageHash;
  } catch (error) {
    list.fail(id, OS_TITLE, errorText(error));
    return;
  }
  if (hash === undefined) list.fail(id, OS_TITLE, 'no os-image-hash event in RTMR3');
  else if (allowed.map(normalizeHex).includes(hash)) list.pass(id, OS_TITLE, `os-image-hash ${hash} allowed`);
  else list.fail(id, OS_TITLE, `os-image-hash ${hash} not allowed`);
};

const safeJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};
