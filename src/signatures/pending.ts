/**
 * Ids whose response is still being sent. Clients race the end of a stream and may ask for the
 * signature a few ms after the last byte (docs/protocol.md); a lookup for an id that is in flight waits
 * for it to settle instead of answering 404.
 */
export class PendingSignatures {
  private readonly waiting = new Map<string, { promise: Promise<void>; settle: () => void }>();

  begin(id: string): void {
    const key = id.toLowerCase();
    if (this.waiting.has(key)) return;
    let settle = (): void => undefined;
    const promise = new Promise<void>((resolve) => {
      settle = resolve;
    });
    this.waiting.set(key, { promise, settle });
  }

  /** Signed or abandoned: wake whoever waits (they read the store again). */
  settle(id: string): void {
    const key = id.toLowerCase();
    const entry = this.waiting.get(key);
    if (entry === undefined) return;
    this.waiting.delete(key);
    entry.settle();
  }

  has(id: string): boolean {
    return this.waiting.has(id.toLowerCase());
  }

  get size(): number {
    return this.waiting.size;
  }

  /** Resolves when the id settles or after `timeoutMs`; at once when the id is not in flight. */
  async wait(id: string, timeoutMs: number): Promise<void> {
    const entry = this.waiting.get(id.toLowerCase());
    if (entry === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    try {
      await Promise.race([entry.promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
