export type { AppDeps } from './app.js';
export { createApp } from './app.js';
export type { Providers, QuoteProviderIo } from './providers.js';
export {
  gpuEvidenceChecker,
  selectGpuProvider,
  selectKeySource,
  selectProviders,
  selectQuoteProvider,
} from './providers.js';
export type { Sidecar, SidecarOverrides } from './sidecar.js';
export { startSidecar } from './sidecar.js';
export { VERSION } from './version.js';
