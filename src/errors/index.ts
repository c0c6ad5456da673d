export type { ErrorType, SidecarErrorOptions } from './sidecar-error.js';
export { badRequest, notFound, SidecarError, unavailable } from './sidecar-error.js';
