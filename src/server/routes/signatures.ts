import type { IncomingMessage } from 'node:http';
import { Hono } from 'hono';
import type { Budget } from '../../concurrency/index.js';
import { SidecarError } from '../../errors/index.js';
import { RESPONSE_ID_PATTERN } from '../../proxy/index.js';
import { type SignatureLookup, signatureAnswer } from '../../signatures/index.js';
import { parseAlgo, type ServerEnv } from './env.js';

export interface SignatureRouteDeps {
  signatures: SignatureLookup;
  /**
   * Lookups that wait (for a response still being sent, or a shared store's re-reads), per client
   * and in all. Lookups that find their record at once are not counted.
   */
  lookups: Budget;
  clientOf: (incoming: IncomingMessage) => string;
}

/** `GET /signature/{id}` (docs/protocol.md, Signatures). */
export const signatureRoutes = (deps: SignatureRouteDeps): Hono<ServerEnv> => {
  const routes = new Hono<ServerEnv>();
  routes.get('/signature/:id', async (c) => {
    const id = c.req.param('id');
    const algo = parseAlgo(c.req.query('signing_algo'));
    if (!RESPONSE_ID_PATTERN.test(id)) {
      throw new SidecarError('malformed chat id', { status: 400, code: 'invalid_chat_id', param: 'id' });
    }
    let record = await deps.signatures.get(id);
    if (record === undefined && deps.signatures.mayAppear(id)) {
      // Without Node's request (app.request() in tests) every lookup counts as one local client.
      const incoming = c.env?.incoming;
      const release = deps.lookups.tryTake(incoming === undefined ? 'local' : deps.clientOf(incoming));
      if (release === undefined) {
        throw new SidecarError('too many signature lookups waiting; retry shortly', {
          status: 429,
          code: 'lookup_limit',
        });
      }
      try {
        record = await deps.signatures.settle(id);
      } finally {
        release();
      }
    }
    if (record === undefined) {
      throw new SidecarError('Chat id not found or expired', { status: 404, code: 'chat_id_not_found' });
    }
    // The same JSON the signature trailer carries (signatures/signature-trailer.ts).
    return c.json(signatureAnswer(record, algo));
  });
  return routes;
};
