export type { AttestationServiceOptions, TlsBinding } from './attestation-service.js';
export { AttestationService } from './attestation-service.js';
export { Limiter } from './limiter.js';
export type { Attestation, AttestationReport } from './report.js';
export { SIMULATED_WARNING } from './report.js';
