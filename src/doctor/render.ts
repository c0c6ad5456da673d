import type { CheckResult, CheckStatus } from './check.js';
import type { Verdict } from './verdict.js';

/**
 * The doctor's two outputs (docs/protocol.md): `{"verdict","summary","checks":[{"id","status","detail",
 * "hint"}]}` for machines, aligned lines for people. `hint` is null in JSON when there is none, so
 * every object has the same four keys.
 */
export const renderJson = (results: readonly CheckResult[], verdict: Verdict): string =>
  `${JSON.stringify({
    verdict: verdict.verdict,
    summary: verdict.summary,
    checks: results.map((r) => ({ id: r.id, status: r.status, detail: r.detail, hint: r.hint ?? null })),
  })}\n`;

const LABEL: Record<CheckStatus, string> = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', skip: 'SKIP' };

export const renderHuman = (results: readonly CheckResult[], title: string, verdict: Verdict): string => {
  const width = Math.max(0, ...results.map((r) => r.id.length));
  const lines = [title, ''];
  for (const r of results) {
    lines.push(`${LABEL[r.status]}  ${r.id.padEnd(width)}  ${r.detail}`);
    if (r.hint !== undefined && r.status !== 'pass') lines.push(`${' '.repeat(width + 8)}→ ${r.hint}`);
  }
  const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  lines.push(
    '',
    `${count('pass')} pass, ${count('warn')} warn, ${count('fail')} fail, ${count('skip')} skip`,
    `verdict: ${verdict.verdict}: ${verdict.summary}`,
  );
  return `${lines.join('\n')}\n`;
};

/** docs/protocol.md: 0 when nothing failed, 1 when a check failed (2, the doctor itself failing, is the CLI's). */
export const exitCodeOf = (results: readonly CheckResult[]): 0 | 1 =>
  results.some((r) => r.status === 'fail') ? 1 : 0;
