import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

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
    destination,
  );
