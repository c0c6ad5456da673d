import type { Attestation } from './attestor.js';
import type { Circuit, Reachability } from './gateway-state.js';

/** Whether answers are being verified now, as one word for scripts. */
export type SummaryState =
  | 'verified'
  | 'simulated'
  | 'unreachable'
  | 'refusing'
  | 'attesting'
  | 'circuit_open';

/** The summary line of the status page and of /health: the state, its words, and its colour. */
export interface Summary {
  state: SummaryState;
  /** ok: green, warn: amber, bad: red (the page's colours). */
  tone: 'ok' | 'warn' | 'bad';
  words: string;
  /** Whether a new request would be answered and verified now (/health answers 200 only then). */
  serving: boolean;
}

export interface SummaryInput {
  current: Attestation | undefined;
  circuit: Readonly<Circuit>;
  reachability: Readonly<Reachability> | undefined;
  onFailure: 'refuse' | 'warn';
  nextAttestationAt: number | undefined;
}

const iso = (ms: number | undefined): string =>
  ms === undefined ? 'an unknown time' : new Date(ms).toISOString();

const failedDetail = (a: Attestation): string =>
  a.checks.find((c) => c.id === a.failedCheck)?.detail ?? 'no detail';

/**
 * The one place that says in words whether answers are verified now; the status page and /health
 * both show what this returns. Order matters: a provider that cannot be reached is named before the
 * check that failed because of it, and "verified" is never said of a simulated provider.
 */
export const summarize = (input: SummaryInput): Summary => {
  const { current: a, circuit, reachability: reach, nextAttestationAt: next } = input;
  if (a === undefined)
    return {
      state: 'attesting',
      tone: 'bad',
      words: 'attesting: the first attestation has not finished; requests are refused until it passes',
      serving: false,
    };
  if (reach?.ok === false) {
    const retry = a.ok ? '' : `, retrying at ${iso(next)}`;
    const detail = reach.detail === undefined ? '' : ` (${reach.detail})`;
    return {
      state: 'unreachable',
      tone: 'bad',
      words: `provider unreachable since ${iso(reach.since ?? reach.at)}${detail}${retry}`,
      serving: false,
    };
  }
  if (!a.ok)
    return {
      state: 'refusing',
      tone: 'bad',
      words: `refusing: ${a.failedCheck ?? 'attestation'} — ${failedDetail(a)}, retrying at ${iso(next)}`,
      serving: false,
    };
  if (circuit.open && input.onFailure === 'refuse') {
    const after = circuit.answerId === undefined ? 'an answer' : `answer ${circuit.answerId}`;
    const what = `${circuit.check ?? 'a check'}${circuit.detail === undefined ? '' : ` — ${circuit.detail}`}`;
    return {
      state: 'circuit_open',
      tone: 'bad',
      words: `circuit open after ${after}: ${what} — until the next attestation at ${iso(next)}`,
      serving: false,
    };
  }
  if (a.identity?.simulated === true)
    return {
      state: 'simulated',
      tone: 'warn',
      words: 'simulated provider: answers verified against a simulated TEE, proves nothing',
      serving: true,
    };
  return { state: 'verified', tone: 'ok', words: 'verified', serving: true };
};
