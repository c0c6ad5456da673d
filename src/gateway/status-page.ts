import { type GatewayView, gatewayView, type StatusView } from './gateway-view.js';

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

/** HTML escaping for text and attribute values (every value on the page goes through it). */
export const escapeHtml = (value: unknown): string =>
  String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const dash = (value: unknown): unknown => (value === null || value === undefined ? '—' : value);

/**
 * One labelled row. Labels never break inside a word (`.label` is nowrap); a longer explanation goes
 * on a smaller line under it. Only hex-like values (`hex`) may break anywhere: they have no words.
 */
const row = (
  label: string,
  value: unknown,
  id: string,
  opts: { hex?: boolean; why?: string } = {},
): string => {
  const why = opts.why === undefined ? '' : `<small class="why">${escapeHtml(opts.why)}</small>`;
  // The id last, next to the value: `id="x">value` is what scripts (and tests) look for.
  const cls = opts.hex === true ? ' class="hex"' : '';
  return `<tr><th scope="row"><span class="label">${escapeHtml(label)}</span>${why}</th><td${cls} id="${escapeHtml(id)}">${escapeHtml(dash(value))}</td></tr>`;
};

/** Provider and link facts (URLs, addresses, amounts: no words to keep whole, so they may break). */
const flat = (record: Record<string, unknown>): string =>
  Object.entries(record)
    .map(
      ([k, v]) =>
        `<tr><th scope="row"><span class="label">${escapeHtml(k)}</span></th><td class="hex">${escapeHtml(typeof v === 'object' && v !== null ? JSON.stringify(v) : dash(v))}</td></tr>`,
    )
    .join('');

const identityRows = (v: GatewayView): string => {
  const m = v.measurements;
  return [
    row('signing address', v.signing_address, 'signing-address', { hex: true }),
    row('signing algorithm', v.signing_algo, 'signing-algo'),
    row('TEE platform', v.platform, 'platform'),
    row('TCB status', v.tcb_status, 'tcb-status'),
    row('MRTD', m.mrtd, 'mrtd', { hex: true }),
    row('RTMR0', m.rtmr0, 'rtmr0', { hex: true }),
    row('RTMR1', m.rtmr1, 'rtmr1', { hex: true }),
    row('RTMR2', m.rtmr2, 'rtmr2', { hex: true }),
    row('RTMR3', m.rtmr3, 'rtmr3', { hex: true }),
    row('compose hash', v.compose_hash, 'compose-hash', { hex: true }),
    row('quote sha256', v.quote_sha256, 'quote-sha256', { hex: true }),
    row('TLS key', v.tls_fingerprint ?? '— (not over attested TLS)', 'tls-fingerprint', {
      hex: v.tls_fingerprint !== null,
      why: 'SPKI sha256; connections are pinned to it',
    }),
    row('last attested', v.attestation?.at, 'last-attested'),
    row('last passed', v.last_passed_at, 'last-passed'),
    row('next attestation', v.next_attestation_at, 'next-attestation'),
    row('nonce', v.attestation?.nonce, 'nonce', { hex: true, why: 'of the latest attestation' }),
    row('fresh', v.fresh === null ? null : v.fresh ? 'yes' : `no: ${v.not_fresh_reason}`, 'fresh', {
      why: 'the report answered that nonce',
    }),
    row(
      'E2EE',
      v.e2ee.words,
      'e2ee',
      v.e2ee.protects === undefined ? {} : { why: `protects ${v.e2ee.protects}` },
    ),
    row('streams', v.stream_release, 'stream-release', { why: 'when stream events reach your tool' }),
    row('on failure', v.on_failure, 'on-failure'),
  ].join('\n');
};

const gpuTable = (v: GatewayView): string =>
  v.gpus.length === 0
    ? '<p id="gpus-none">No GPU evidence.</p>'
    : `<table id="gpus" class="grid"><thead><tr><th>GPU</th><th>arch</th><th>CC mode</th><th>driver</th><th>VBIOS</th></tr></thead><tbody>${v.gpus
        .map(
          (g) =>
            `<tr><td>${escapeHtml(g.index)}</td><td>${escapeHtml(g.arch)}</td><td class="cc">${escapeHtml(g.ccMode)}</td><td>${escapeHtml(g.driver ?? '—')}</td><td>${escapeHtml(g.vbios ?? '—')}</td></tr>`,
        )
        .join('')}</tbody></table>`;

/** Check ids stay on one line (`.check-id`); the detail wraps under them on a phone. */
const checkTable = (v: GatewayView): string =>
  v.attestation === null
    ? '<p id="checks-none">No attestation has finished yet.</p>'
    : `<table id="checks" class="grid"><colgroup><col class="c-id"><col class="c-st"><col></colgroup><thead><tr><th>check</th><th>status</th><th>detail</th></tr></thead><tbody>${v.attestation.checks
        .map(
          (c) =>
            `<tr class="${escapeHtml(c.status)}"><td><code class="check-id">${escapeHtml(c.id)}</code></td><td class="st">${escapeHtml(c.status)}${c.simulated ? ' (simulated)' : ''}</td><td class="detail">${escapeHtml(c.detail)}</td></tr>`,
        )
        .join('')}</tbody></table>`;

const receiptTable = (v: GatewayView): string =>
  v.receipts.recent.length === 0
    ? '<p id="receipts-none">No verified answers yet.</p>'
    : `<table id="receipts" class="grid"><colgroup><col class="c-time"><col><col class="c-model"><col class="c-st"><col></colgroup><thead><tr><th>time</th><th>id</th><th>model</th><th>stream</th><th>response sha256</th></tr></thead><tbody>${v.receipts.recent
        .map(
          (r) =>
            `<tr><td>${escapeHtml(r.time)}</td><td class="rid hex"><code>${escapeHtml(r.id)}</code></td><td class="hex">${escapeHtml(r.model ?? '—')}</td><td>${r.stream ? 'yes' : 'no'}</td><td class="hex"><code>${escapeHtml(r.response_sha256)}</code></td></tr>`,
        )
        .join('')}</tbody></table>`;

const counterRows = (v: GatewayView): string =>
  [
    row('verified', v.counters.verified, 'count-verified'),
    row('failed', v.counters.failed, 'count-failed', { why: 'answers that failed verification' }),
    row('refused', v.counters.refused, 'count-refused', { why: 'not attested, or circuit open' }),
    row('unsigned', v.counters.unsigned, 'count-unsigned', { why: 'GET routes, provider errors' }),
    row('attestations passed', v.counters.attestationsPassed, 'count-attest-passed'),
    row('attestations failed', v.counters.attestationsFailed, 'count-attest-failed'),
  ].join('\n');

/**
 * Phone widths (≤ 40em) stack every table: label above value, check id above its detail, so that
 * nothing scrolls sideways at 375 px. Colours: green for verified, amber for simulated, red for any
 * state in which answers are not being verified.
 */
const STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;padding:1em;max-width:72em;color:#1f2328}
h1{font-size:1.3em;margin:.2em 0 .6em}h2{font-size:1.15em;margin:1.4em 0 .4em}h3{font-size:1em}
#summary{margin:0 0 1em;padding:.7em 1em;border-left:8px solid;border-radius:4px;font-size:1.1em;font-weight:600;overflow-wrap:break-word}
.ok{background:#dafbe1;color:#0a4d1f;border-color:#1a7f37}.warn{background:#fff1c2;color:#5c3b00;border-color:#bf8700}.bad{background:#ffe1e1;color:#82071e;border-color:#cf222e}
.nobr{white-space:nowrap}.tok{display:inline-block;max-width:100%;overflow-wrap:anywhere;font:.85em ui-monospace,monospace}
.banner{padding:.4em 1em;border-radius:4px;font-weight:600}
table{border-collapse:collapse;width:100%;table-layout:fixed}th,td{text-align:left;vertical-align:top;border-bottom:1px solid #d8dee4;padding:3px 6px}
.kv th{width:12em}.label{white-space:nowrap}.why{display:block;font-weight:normal;color:#57606a;font-size:.85em}
code{font-size:.85em}.hex{overflow-wrap:anywhere;font-family:ui-monospace,monospace;font-size:.85em}.hex code{font-size:1em}
.check-id{white-space:nowrap}.c-id{width:15em}.c-st{width:7em}.c-time{width:14em}.c-model{width:8em}.detail{overflow-wrap:break-word}
tr.fail td{color:#82071e}tr.fail .check-id{font-weight:700}
@media (max-width:40em){body{padding:.6em}#summary{font-size:1em}table,thead,tbody,tr,th,td{display:block;width:auto}colgroup,thead{display:none}tr{border-bottom:1px solid #d8dee4;padding:4px 0}th,td{border:0;padding:1px 0}.kv th{width:auto}}`;

const banners = (v: GatewayView): string =>
  (v.simulated === true
    ? '<p id="simulated" class="banner warn">SIMULATED provider: accepted only because the policy allows simulation. Nothing here is proven by hardware.</p>'
    : '') +
  (v.fresh === false
    ? `<p id="not-fresh" class="banner warn">NOT FRESH: ${escapeHtml(v.not_fresh_reason)} (accepted by the policy's acceptBrokerQuote; such a quote can be replayed).</p>`
    : '');

const ISO_TIME = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g;

/**
 * The summary's words, escaped, with its times kept on one line and the answer id kept whole where
 * it fits (an inline block: it moves to its own line before it breaks, and breaks only if longer
 * than the line). Hyphens in ids and dates would otherwise be break points.
 */
const summaryHtml = (v: GatewayView): string => {
  const id = v.circuit.answer_id;
  const words = escapeHtml(v.summary.words).replace(ISO_TIME, (t) => `<span class="nobr">${t}</span>`);
  if (id === null || v.summary.state !== 'circuit_open') return words;
  const escaped = escapeHtml(id);
  return words.replace(
    `answer ${escaped}:`,
    `answer <span class="tok"><span id="circuit-answer">${escaped}</span>:</span>`,
  );
};

/**
 * The gateway's status page: server-rendered HTML, no script, no external resource, so it works
 * in any browser (and with JavaScript off). It renders `gatewayView` (what /health sends), so the
 * page and /health cannot disagree. Elements carrying figures have ids so a test (and a script) can
 * read them. Everything shown comes from the provider or the user's config and is escaped.
 */
export const renderStatusPage = (input: StatusView): string => {
  const v = gatewayView(input);
  const s = v.summary;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>teeml-sidecar gateway: ${escapeHtml(s.state.replace('_', ' '))}</title>
<style>${STYLE}</style>
</head><body>
<h1>teeml-sidecar gateway</h1>
<p id="summary" class="${s.tone}" data-state="${s.state}">${summaryHtml(v)}</p>
${banners(v)}
<h2>Attested identity</h2>
<table id="identity" class="kv">
${identityRows(v)}
</table>
<h3>Checks of the latest attestation</h3>
${checkTable(v)}
<h3>GPUs</h3>
${gpuTable(v)}
<h2>Provider</h2>
<table id="provider" class="kv">${flat(v.provider)}${flat(v.link)}</table>
<h2>Answers</h2>
<table id="counters" class="kv">
${counterRows(v)}
</table>
<h2>Last receipts</h2>
${v.receipts.file === null ? '<p>Receipts are not written to a file (--receipts).</p>' : `<p>Written to <code id="receipts-file" class="hex">${escapeHtml(v.receipts.file)}</code>.</p>`}
${receiptTable(v)}
<p><small>Rendered ${escapeHtml(v.now)}. Reload for fresh figures; <a href="/health">/health</a> has the same in JSON.</small></p>
</body></html>
`;
};
