/**
 * Concurrent holders of one kind of resource, bounded globally and per key (a client): waiting
 * signature lookups, request bodies being uploaded, requests at the upstream. Taking is immediate:
 * a full budget answers "no" at once (the caller turns it into a 429), nothing queues behind it, so
 * one kind of slow request can never hold the slots another kind needs.
 */
export class Budget {
  private total = 0;
  private readonly perKey = new Map<string, number>();

  constructor(private readonly limits: { global: number; perKey?: number }) {}

  get size(): number {
    return this.total;
  }

  /** Takes one slot for `key`; returns the release function, or undefined when a limit is reached. */
  tryTake(key = ''): (() => void) | undefined {
    const held = this.perKey.get(key) ?? 0;
    if (this.total >= this.limits.global || held >= (this.limits.perKey ?? Number.POSITIVE_INFINITY)) {
      return undefined;
    }
    this.total++;
    this.perKey.set(key, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.perKey.get(key) ?? 1) - 1;
      if (left === 0) this.perKey.delete(key);
      else this.perKey.set(key, left);
    };
  }
}
