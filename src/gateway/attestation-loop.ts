import type { Logger } from '../log/index.js';

/** Timers for re-attestation, injected so that tests drive them. */
export interface AttestationTimers {
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
}

export interface AttestationLoopOptions {
  /** Runs one attestation; a rejection is logged and the loop goes on. */
  attest: () => Promise<unknown>;
  /** Whether the provider is attested now. */
  attested: () => boolean;
  intervalMs: number;
  /** The wait while the provider is not attested (at most `intervalMs`). */
  retryMs: number;
  timers: AttestationTimers;
  now: () => number;
  logger: Logger;
}

/** Unref'd Node timers: a pending re-attestation does not keep the process alive. */
export const nodeTimers: AttestationTimers = {
  setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms).unref(),
  clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
};

/** Re-attests the provider on a timer, one run after the other, until stopped. */
export class AttestationLoop {
  private timer: unknown;
  private next: number | undefined;
  private stopped = false;
  private runningNow = false;
  private lastNow = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: AttestationLoopOptions) {}

  /** When the next attestation runs, milliseconds since the epoch (the status page shows it). */
  get nextAt(): number | undefined {
    return this.next;
  }

  /**
   * Arms the next run. While the provider is not attested every request is refused: try again sooner
   * than the interval (a provider that restarts or a network blip should not cost the user ten minutes).
   */
  schedule(): void {
    if (this.stopped) return;
    const { attest, attested, intervalMs, retryMs, timers, now, logger } = this.options;
    // One timer at a time: a run started by runNow and one by the timer both re-arm here.
    if (this.timer !== undefined) timers.clearTimeout(this.timer);
    const wait = attested() ? intervalMs : Math.min(intervalMs, retryMs);
    this.next = now() + wait;
    this.timer = timers.setTimeout(() => {
      attest()
        .catch((error: unknown) => logger.error({ err: (error as Error).message }, 'attestation crashed'))
        .finally(() => this.schedule());
    }, wait);
  }

  /**
   * Runs an attestation now instead of at the timer (an answer's signer was doubted), then arms the
   * timer afresh. At most one such run per `minGapMs` (default 10 s): a man in the middle that forges
   * signatures must not turn the gateway into a report-fetching loop against the provider.
   */
  runNow(attest: () => Promise<unknown>, minGapMs = 10_000): void {
    const { timers, now, logger } = this.options;
    if (this.stopped || this.runningNow || now() - this.lastNow < minGapMs) return;
    this.runningNow = true;
    this.lastNow = now();
    if (this.timer !== undefined) timers.clearTimeout(this.timer);
    this.timer = undefined;
    attest()
      .catch((error: unknown) => logger.error({ err: (error as Error).message }, 'attestation crashed'))
      .finally(() => {
        this.runningNow = false;
        this.schedule();
      });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.options.timers.clearTimeout(this.timer);
  }
}
