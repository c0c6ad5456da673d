import { BROKER_QUOTE_NOT_FRESH } from '../verifier/index.js';
import type { Attestation } from './attestor.js';
import type { Circuit, Reachability } from './gateway-state.js';
import { type Summary, summarize } from './gateway-summary.js';
import type { ProviderIdentity } from './identity.js';
import type { Receipt } from './receipts.js';
import type { GatewayCounters } from './status-page.js';

/** What the gateway knows at one moment: the input of the status page and of /health. */
export interface StatusView {
  provider: Record<string, unknown>;
  linkHealth: Record<string, unknown>;
  current: Attestation | undefined;
  lastPassed: Attestation | undefined;
  counters: GatewayCounters;
  circuit: Readonly<Circuit>;
  reachability: Readonly<Reachability> | undefined;
  onFailure: 'refuse' | 'warn';
  e2ee: { on: boolean; scheme: string | null; words: string; protects?: string };
  /** When stream events reach the user: as they arrive (attested TLS) or held until verified. */
  streamRelease: string;
  receipts: readonly Receipt[];
  receiptsFile: string | undefined;
  nextAttestationAt: number | undefined;
  now: number;
}

type Time = string | null;

/** The facts of /health (snake_case JSON) and of the page; docs/gateway-status.md lists every field. */
export interface GatewayView {
  /** Kept from the first /health: ok, unattested, circuit_open or unreachable. */
  status: 'ok' | 'unattested' | 'circuit_open' | 'unreachable';
  summary: Summary;
  provider: Record<string, unknown>;
  link: Record<string, unknown>;
  simulated: boolean | null;
  fresh: boolean | null;
  not_fresh_reason: string | null;
  signing_address: string | null;
  signing_algo: string | null;
  platform: string | null;
  tcb_status: string | null;
  measurements: ProviderIdentity['measurements'];
  compose_hash: string | null;
  quote_sha256: string | null;
  gpus: ProviderIdentity['gpus'];
  tls_fingerprint: string | null;
  e2ee: StatusView['e2ee'];
  stream_release: string;
  on_failure: 'refuse' | 'warn';
  failed_check: string | null;
  attestation: {
    ok: boolean;
    at: Time;
    nonce: string;
    source: string;
    checks: Array<{ id: string; title: string; status: string; detail: string; simulated: boolean }>;
  } | null;
  last_passed_at: Time;
  next_attestation_at: Time;
  circuit: {
    open: boolean;
    check: string | null;
    answer_id: string | null;
    detail: string | null;
    since: Time;
  };
  reachability: { ok: boolean; at: Time; since: Time; detail: string | null } | null;
  counters: GatewayCounters;
  receipts: {
    file: string | null;
    last_at: Time;
    recent: Array<{
      time: string;
      id: string;
      model: string | null;
      stream: boolean;
      response_sha256: string;
    }>;
  };
  now: Time;
}

const time = (ms: number | undefined): Time => (ms === undefined ? null : new Date(ms).toISOString());

const statusWord = (summary: Summary): GatewayView['status'] =>
  summary.state === 'circuit_open'
    ? 'circuit_open'
    : summary.state === 'unreachable'
      ? 'unreachable'
      : summary.serving
        ? 'ok'
        : 'unattested';

/**
 * The gateway's state as facts, one object for both readers: /health sends it as JSON and the status
 * page renders it, so the two cannot disagree. The identity shown is the latest passed attestation's
 * (the one answers were last checked against), the checks the latest attestation's.
 */
export const gatewayView = (view: StatusView): GatewayView => {
  const a = view.current;
  const trusted = a?.ok ? a : view.lastPassed;
  const id = trusted?.identity;
  const summary = summarize(view);
  const { circuit, reachability: r } = view;
  return {
    status: statusWord(summary),
    summary,
    provider: view.provider,
    link: view.linkHealth,
    simulated: id?.simulated ?? null,
    fresh: trusted?.fresh ?? null,
    not_fresh_reason: trusted !== undefined && !trusted.fresh ? BROKER_QUOTE_NOT_FRESH : null,
    signing_address: trusted?.signer?.address ?? null,
    signing_algo: trusted?.signer?.algo ?? null,
    platform: id?.platform ?? null,
    tcb_status: id?.tcbStatus ?? null,
    measurements: id?.measurements ?? {},
    compose_hash: id?.composeHash ?? null,
    quote_sha256: trusted?.quoteSha256 ?? null,
    gpus: id?.gpus ?? [],
    tls_fingerprint: trusted?.tlsFingerprint ?? null,
    e2ee: view.e2ee,
    stream_release: view.streamRelease,
    on_failure: view.onFailure,
    failed_check: a?.failedCheck ?? null,
    attestation:
      a === undefined
        ? null
        : {
            ok: a.ok,
            at: time(a.at),
            nonce: a.nonce,
            source: a.source,
            checks: a.checks.map((c) => ({ ...c, simulated: c.simulated === true })),
          },
    last_passed_at: time(view.lastPassed?.at),
    next_attestation_at: time(view.nextAttestationAt),
    circuit: {
      open: circuit.open,
      check: circuit.check ?? null,
      answer_id: circuit.answerId ?? null,
      detail: circuit.detail ?? null,
      since: time(circuit.since),
    },
    reachability:
      r === undefined ? null : { ok: r.ok, at: time(r.at), since: time(r.since), detail: r.detail ?? null },
    counters: { ...view.counters },
    receipts: {
      file: view.receiptsFile ?? null,
      last_at: view.receipts[0]?.time ?? null,
      recent: view.receipts.map((x) => ({
        time: x.time,
        id: x.id,
        model: x.model ?? null,
        stream: x.stream,
        response_sha256: x.response_sha256,
      })),
    },
    now: time(view.now),
  };
};
