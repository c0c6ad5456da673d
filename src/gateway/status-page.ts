import { BROKER_QUOTE_NOT_FRESH } from '../verifier/index.js';
import type { Attestation } from './attestor.js';
import type { Receipt } from './receipts.js';

export interface GatewayCounters {
  verified: number;
  failed: number;
  /** Refused before forwarding: no passing attestation, or the circuit was open. */
  refused: number;
  /** Answers the provider does not sign (GET routes, upstream errors), passed through as such. */
  unsigned: number;
  attestationsPassed: number;
  attestationsFailed: number;
}

export interface StatusView {
  provider: Record<string, unknown>;
  linkHealth: Record<string, unknown>;
  current: Attestation | undefined;
  lastPassed: Attestation | undefined;
  counters: GatewayCounters;
  circuit: { open: boolean; check?: string; since?: number };
  onFailure: 'refuse' | 'warn';
  e2ee: string;
  receipts: readonly Receipt[];
  receiptsFile: string | undefined;
  nextAttestationAt: number | undefined;
  now: number;
}

/** HTML escaping for text and attribute values (every value on the page goes through it). */
export const escapeHtml = (value: unknown): string =>
  String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const iso = (ms: number | undefined): string => (ms === undefined ? '—' : new Date(ms).toISOString());

const row = (label: string, value: unknown, id?: string): string =>
  `<tr><th scope="row">${escapeHtml(label)}</th><td${id === undefined ? '' : ` id="${escapeHtml(id)}"`}>${escapeHtml(value)}</td></tr>`;

const flat = (record: Record<string, unknown>): string =>
  Object.entries(record)
    .map(([k, v]) => row(k, typeof v === 'object' && v !== null ? JSON.stringify(v) : v))
    .join('');

/**
 * The gateway's status page: server-rendered HTML, no script, no external resource, so it works
 * in any browser (and with JavaScript off). Elements carrying figures have ids so a test (and a
 * script) can read them. Everything shown comes from the provider or the user's config and is
 * escaped.
 */
export const renderStatusPage = (view: StatusView): string => {
  const a = view.current;
  const good = view.lastPassed;
  const identity = (a?.ok ? a : good)?.identity;
  const state =
    a === undefined ? 'attesting' : a.ok ? (view.circuit.open ? 'circuit open' : 'verified') : 'refusing';
  const m = identity?.measurements ?? {};
  const gpus =
    identity === undefined || identity.gpus.length === 0
      ? '<p id="gpus-none">No GPU evidence.</p>'
      : `<table id="gpus"><thead><tr><th>GPU</th><th>arch</th><th>CC mode</th><th>driver</th><th>VBIOS</th></tr></thead><tbody>${identity.gpus
          .map(
            (g) =>
              `<tr><td>${escapeHtml(g.index)}</td><td>${escapeHtml(g.arch)}</td><td class="cc">${escapeHtml(g.ccMode)}</td><td>${escapeHtml(g.driver ?? '—')}</td><td>${escapeHtml(g.vbios ?? '—')}</td></tr>`,
          )
          .join('')}</tbody></table>`;
  const checks =
    a === undefined
      ? ''
      : `<table id="checks"><thead><tr><th>check</th><th>status</th><th>detail</th></tr></thead><tbody>${a.checks
          .map(
            (c) =>
              `<tr class="${escapeHtml(c.status)}"><td><code>${escapeHtml(c.id)}</code></td><td>${escapeHtml(c.status)}${c.simulated ? ' (simulated)' : ''}</td><td>${escapeHtml(c.detail)}</td></tr>`,
          )
          .join('')}</tbody></table>`;
  const receipts =
    view.receipts.length === 0
      ? '<p id="receipts-none">No verified answers yet.</p>'
      : `<table id="receipts"><thead><tr><th>time</th><th>id</th><th>model</th><th>stream</th><th>response sha256</th></tr></thead><tbody>${view.receipts
          .map(
            (r) =>
              `<tr><td>${escapeHtml(r.time)}</td><td class="rid"><code>${escapeHtml(r.id)}</code></td><td>${escapeHtml(r.model ?? '—')}</td><td>${r.stream ? 'yes' : 'no'}</td><td><code>${escapeHtml(r.response_sha256)}</code></td></tr>`,
          )
          .join('')}</tbody></table>`;
  const trustedBy = a?.ok ? a : good;
  const staleBanner =
    trustedBy !== undefined && !trustedBy.fresh
      ? `<p id="not-fresh" class="warn">NOT FRESH: ${escapeHtml(BROKER_QUOTE_NOT_FRESH)} (accepted by the policy's acceptBrokerQuote; such a quote can be replayed).</p>`
      : '';
  const simulatedBanner = identity?.simulated
    ? '<p id="simulated" class="warn">SIMULATED provider: accepted only because the policy allows simulation. Nothing here is proven by hardware.</p>'
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>teeml-sidecar gateway: ${escapeHtml(state)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}th{text-align:left;padding-right:1em}td,th{vertical-align:top;border-bottom:1px solid #ddd;padding:2px 6px}code{font-size:12px;word-break:break-all}.fail td{color:#a00}.warn{color:#a00;font-weight:bold}</style>
</head><body>
<h1>teeml-sidecar gateway</h1>
<p>State: <strong id="state">${escapeHtml(state)}</strong>${view.circuit.open ? ` (after <code id="circuit-check">${escapeHtml(view.circuit.check ?? '')}</code> at ${escapeHtml(iso(view.circuit.since))})` : ''}${a?.ok === false ? ` — failing check <code id="failed-check">${escapeHtml(a.failedCheck ?? '')}</code>` : ''}</p>
${simulatedBanner}
${staleBanner}
<h2>Provider</h2>
<table id="provider">${flat(view.provider)}${flat(view.linkHealth)}</table>
<h2>Attested identity</h2>
<table id="identity">
${row('signing address', identity === undefined ? '—' : ((a?.ok ? a : good)?.signer?.address ?? '—'), 'signing-address')}
${row('signing algorithm', (a?.ok ? a : good)?.signer?.algo ?? '—', 'signing-algo')}
${row('TEE platform', identity?.platform ?? '—', 'platform')}
${row('TCB status', identity?.tcbStatus ?? '—', 'tcb-status')}
${row('MRTD', m.mrtd ?? '—', 'mrtd')}
${row('RTMR0', m.rtmr0 ?? '—', 'rtmr0')}
${row('RTMR1', m.rtmr1 ?? '—', 'rtmr1')}
${row('RTMR2', m.rtmr2 ?? '—', 'rtmr2')}
${row('RTMR3', m.rtmr3 ?? '—', 'rtmr3')}
${row('compose hash', identity?.composeHash ?? '—', 'compose-hash')}
${row('quote sha256', identity?.quoteSha256 ?? '—', 'quote-sha256')}
${row('TLS key (SPKI sha256; connections pinned to it)', trustedBy?.tlsFingerprint ?? '— (not over attested TLS)', 'tls-fingerprint')}
${row('last attested', iso(a?.at), 'last-attested')}
${row('last passed', iso(good?.at), 'last-passed')}
${row('next attestation', iso(view.nextAttestationAt), 'next-attestation')}
${row('attestation nonce', a?.nonce ?? '—', 'nonce')}
${row('fresh (report answered that nonce)', trustedBy === undefined ? '—' : trustedBy.fresh ? 'yes' : `no: ${BROKER_QUOTE_NOT_FRESH}`, 'fresh')}
${row('E2EE', view.e2ee, 'e2ee')}
${row('on failure', view.onFailure, 'on-failure')}
</table>
<h3>GPUs</h3>
${gpus}
<h3>Checks of the latest attestation</h3>
${checks}
<h2>Answers</h2>
<table id="counters">
${row('verified', view.counters.verified, 'count-verified')}
${row('failed verification', view.counters.failed, 'count-failed')}
${row('refused (not attested or circuit open)', view.counters.refused, 'count-refused')}
${row('unsigned (GET routes, provider errors)', view.counters.unsigned, 'count-unsigned')}
${row('attestations passed', view.counters.attestationsPassed, 'count-attest-passed')}
${row('attestations failed', view.counters.attestationsFailed, 'count-attest-failed')}
</table>
<h2>Last receipts</h2>
${view.receiptsFile === undefined ? '<p>Receipts are not written to a file (--receipts).</p>' : `<p>Written to <code id="receipts-file">${escapeHtml(view.receiptsFile)}</code>.</p>`}
${receipts}
<p><small>Rendered ${escapeHtml(iso(view.now))}. Reload for fresh figures.</small></p>
</body></html>
`;
};
