import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/**
 * Where a process's lines go unless it says otherwise: standard output, written asynchronously
 * (pino's SonicBoom with `sync: false`). Lines logged while a write is under way go out together in
 * the next one, so a busy sidecar makes one write per batch instead of one blocking write per
 * request; a quiet one still writes each line at once. pino flushes what is left when the process
 * exits.
 */
export const logDestination = (dest: number | string = 1): DestinationStream =>
  pino.destination({ dest, sync: false });

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
