import type { HttpBindings } from '@hono/node-server';
import { SidecarError } from '../../errors/index.js';
import type { SigningAlgo } from '../../keys/index.js';

/**
 * What every route of the sidecar sees: Node's request and response (the proxy writes to the raw
 * response; `app.request()` in tests may leave them out where a route does not need them) and the
 * request id the first middleware sets.
 */
export type ServerEnv = { Bindings: HttpBindings; Variables: { requestId: string } };

export const parseAlgo = (value: string | undefined): SigningAlgo => {
  if (value === undefined || value === '') return 'ecdsa';
  const algo = value.toLowerCase();
  if (algo === 'ecdsa' || algo === 'ed25519') return algo;
  throw new SidecarError('"signing_algo" must be ecdsa or ed25519', {
    status: 400,
    code: 'invalid_signing_algo',
    param: 'signing_algo',
  });
};

export const notFoundRoute = (): SidecarError =>
  new SidecarError('no such route', { status: 404, code: 'route_not_found' });
