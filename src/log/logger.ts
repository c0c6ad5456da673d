import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/** Bytes of lines held before a write, the longest a line waits for one, and the most ever held. */
const LOG_BATCH_BYTES = 4096;
const LOG_FLUSH_MS = 1000;
const LOG_MAX_HELD_BYTES = 16 * 1024 * 1024;

/**
 * Where a process's lines go unless it says otherwise: standard output, in batches (pino's
 * SonicBoom, `sync: false`, `minLength`, `periodicFlush`): lines are written together once 4 KiB
 * are held, and at least every second, so a busy sidecar makes one write per few dozen requests
 * instead of a blocking write per request line, and a quiet one shows each line within a second.
 * pino flushes what is held when the process exits. A reader of standard output that stops reading
 * makes lines wait, never the requests: past 16 MiB held, new lines are dropped.
 */
export const logDestination = (dest: number | string = 1): DestinationStream =>
  pino.destination({
    dest,
    sync: false,
    minLength: LOG_BATCH_BYTES,
    periodicFlush: LOG_FLUSH_MS,
    maxLength: LOG_MAX_HELD_BYTES,
  });

/**
 * Structured JSON logs (pino). Call sites log ids, sizes, statuses and durations, never bodies,
 * prompts, completions, tokens or keys. As a second line of defence the usual secret-bearing keys
 * are redacted wherever they appear.
 */
export const createLogger = (level: string, destination?: DestinationStream): Logger =>
  pino(
    {
      level,
      base: { service: 'teeml-sidecar' },
      redact: {
        paths: [
          'authorization',
          '*.authorization',
          'headers.authorization',
          'key',
          'privateKey',
          'token',
          '*.token',
        ],
        censor: '[redacted]',
      },
    },
    destination ?? (level === 'silent' ? undefined : logDestination()),
  );
