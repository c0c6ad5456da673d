import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Engine } from './engine.js';
import { gatewayView, type StatusView } from './gateway-view.js';
import { renderStatusPage } from './status-page.js';

type StatusOptions = Pick<
  Engine,
  'state' | 'link' | 'e2ee' | 'now' | 'nextAttestationAt' | 'receiptsLabel' | 'streamRelease'
>;

const inputs = async (options: StatusOptions): Promise<StatusView> => {
  const { state, link } = options;
  return {
    provider: await link.describe(),
    linkHealth: await link.health(),
    current: state.attestor.current,
    lastPassed: state.attestor.lastPassed,
    counters: state.counters,
    circuit: state.circuit,
    reachability: state.reachability,
    onFailure: state.onFailure,
    e2ee: options.e2ee.facts(state.attestor.current),
    streamRelease: options.streamRelease(),
    receipts: state.receipts.recent,
    receiptsFile: options.receiptsLabel,
    nextAttestationAt: options.nextAttestationAt(),
    now: options.now(),
  };
};

/**
 * The status page (`GET`/`HEAD /`) and `GET /health`: one view of the gateway's state, as HTML or
 * JSON. /health answers 200 only while a new request would be answered and verified (summary.serving),
 * else 503, so a health check sees what a user would.
 */
export const serveStatus = async (
  kind: 'page' | 'health',
  options: StatusOptions,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> => {
  const view = await inputs(options);
  if (kind === 'health') {
    const body = gatewayView(view);
    res.writeHead(body.summary.serving ? 200 : 503, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
    });
    res.end(JSON.stringify(body));
    return;
  }
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // No script, no external resource: the page needs none.
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    'x-content-type-options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : renderStatusPage(view));
};
