export type { ErrorType, SidecarErrorOptions, UnavailableOptions } from './sidecar-error.js';
export { badRequest, notFound, SidecarError, unavailable, unavailableIn } from './sidecar-error.js';
