import { SidecarError } from '../errors/index.js';

/**
 * At most `concurrency` tasks run at once, at most `maxQueue` wait; beyond that callers get 429 at
 * once instead of piling up behind a slow TEE.
 */
export class Limiter {
  private running = 0;
  private readonly queue: Array<() => void> = [];

  constructor(
    private readonly concurrency: number,
    private readonly maxQueue: number,
  ) {}

  get active(): number {
    return this.running;
  }

  get waiting(): number {
    return this.queue.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.queue.length >= this.maxQueue) {
        throw new SidecarError('too many attestation requests in flight; retry shortly', {
          status: 429,
          code: 'attestation_queue_full',
        });
      }
      await new Promise<void>((resolve) => this.queue.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await task();
    } finally {
      const next = this.queue.shift();
      if (next === undefined) this.running--;
      else next();
    }
  }
}
