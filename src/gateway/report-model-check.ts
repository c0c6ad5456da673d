import type { CheckResult } from '../verifier/index.js';

/** NEAR's `model_name` (one served name, or several comma-separated, as MODEL_NAME is configured). */
const namesIn = (value: unknown): string[] => {
  const list = Array.isArray(value) ? value : [value];
  return list
    .filter((v): v is string => typeof v === 'string')
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
};

/** Every model name a report states: flat `model_name` and each `model_attestations[].model_name`. */
const reportModelNames = (report: unknown): string[] => {
  if (typeof report !== 'object' || report === null) return [];
  const r = report as Record<string, unknown>;
  const entries = Array.isArray(r['model_attestations']) ? r['model_attestations'] : [];
  return [
    ...namesIn(r['model_name']),
    ...entries.flatMap((e) =>
      namesIn(typeof e === 'object' && e !== null ? (e as Record<string, unknown>)['model_name'] : undefined),
    ),
  ];
};

const TITLE = 'the report names a model the policy allows (policy models)';

/**
 * `report.model` (issue 24, item 5): with the policy's `models`, the provider's report must name
 * (`model_name`, NEAR's field) at least one of them; a report that names none, or only others, fails.
 * A provider serving several names passes when one is allowed: requests for the others are refused
 * locally (`modelRefusal`).
 */
export const reportModelCheck = (models: readonly string[], report: unknown): CheckResult => {
  const names = [...new Set(reportModelNames(report))];
  if (names.length === 0)
    return {
      id: 'report.model',
      title: TITLE,
      status: 'fail',
      detail: 'the report names no model (model_name)',
    };
  const allowed = names.filter((n) => models.includes(n));
  if (allowed.length === 0)
    return {
      id: 'report.model',
      title: TITLE,
      status: 'fail',
      detail: `the report names ${names.slice(0, 4).join(', ').slice(0, 200)}, none of them allowed`,
    };
  return {
    id: 'report.model',
    title: TITLE,
    status: 'pass',
    detail: `serves ${allowed.join(', ').slice(0, 200)}`,
  };
};
