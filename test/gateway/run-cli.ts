import { PassThrough, Writable } from 'node:stream';
import { gatewayCommand } from '../../src/cli/gateway.js';
import type { Gateway } from '../../src/gateway/index.js';

/** A writable that keeps what is written (the command's stdout or stderr). */
export const sink = () => {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _e, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text };
};

/**
 * Runs `teeml-sidecar gateway` in-process; resolves once it listens or has exited. Log lines go to
 * `onLog` when given (else they are read and dropped).
 */
export const runGatewayCli = async (
  argv: string[],
  env: Record<string, string> = {},
  onLog?: (line: string) => void,
) => {
  const out = sink();
  const err = sink();
  const logs = new PassThrough();
  if (onLog === undefined) logs.resume();
  else logs.on('data', (c: Buffer) => onLog(c.toString()));
  const stop = new AbortController();
  let gateway: Gateway | undefined;
  let listened: () => void = () => undefined;
  const listening = new Promise<void>((resolve) => {
    listened = resolve;
  });
  const exit = gatewayCommand(argv, env, out.stream, err.stream, {
    signal: stop.signal,
    logDestination: logs,
    onListening: (g) => {
      gateway = g;
      listened();
    },
  });
  await Promise.race([listening, exit]);
  return {
    gateway,
    out,
    err,
    exit,
    stop: () => {
      stop.abort();
      return exit;
    },
  };
};
