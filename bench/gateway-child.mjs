/**
 * Runs the gateway (startGateway, as `teeml-sidecar gateway` does) from the compiled dist/ build in
 * its own process, in front of the sidecar at BENCH_PROVIDER_PORT, so its costs are its own.
 * Simulation is allowed and NRAS is not consulted: the bench measures the per-answer work.
 */
import { DirectLink, parsePolicy, startGateway } from '../dist/gateway/index.js';
import { createLogger, logDestination } from '../dist/log/index.js';

// Lines go where production writes them (an fd, asynchronously: log/logger.ts), here /dev/null.
const sink = logDestination('/dev/null');
const gateway = await startGateway({
  // BENCH_PROVIDER_URL: an https sidecar (attested TLS: the gateway pins its key), e.g. behind the
  // bench's delay proxy.
  link: new DirectLink({
    provider: process.env.BENCH_PROVIDER_URL ?? `http://127.0.0.1:${process.env.BENCH_PROVIDER_PORT}`,
  }),
  policy: parsePolicy('{"allowSimulated":true,"offline":true}'),
  logger: createLogger(process.env.BENCH_LOG_LEVEL ?? 'info', sink),
  host: '127.0.0.1',
  port: 0,
});
if (gateway.attestor.current?.ok !== true) {
  process.stderr.write(`gateway: provider not attested (${gateway.attestor.current?.failedCheck})\n`);
  process.exit(1);
}
process.on('message', (msg) => {
  if (msg.cmd === 'stats') process.send?.({ ...gateway.counters, circuit: gateway.circuit() });
});
process.on('disconnect', () => {
  void gateway.close().then(() => process.exit(0));
});
process.send?.({ port: Number(new URL(gateway.url).port) });
