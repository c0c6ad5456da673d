// The public surface of src/doctor (docs/architecture.md, code habit 1): re-exports only. test/exports.test.ts pins the list.
export type { CheckOutcome, CheckResult, CheckStatus, DoctorCheck } from './check.js';
export type { DoctorContext, DoctorDeps, DoctorInputs, DoctorState } from './context.js';
export { defaultDoctorDeps, doctorChecks, runDoctor } from './doctor.js';
export { exitNow } from './exit-now.js';
export { exitCodeOf, renderHuman, renderJson } from './render.js';
export { runChecks } from './run-checks.js';
export type { DoctorVerdict, Verdict, VerdictSetup } from './verdict.js';
export { verdictOf } from './verdict.js';
export { findAdditionalInfo, GET_SERVICE_SELECTOR, targetTeeAddressesOf } from './zg-checks.js';
