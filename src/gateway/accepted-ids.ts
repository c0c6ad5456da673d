/**
 * The response ids of answers the gateway accepted, so that a repeat is refused (`answer.replayed`,
 * issue 21 item 5): a man in the middle (or a 0G broker) that kept a signed answer and its signature
 * record cannot serve them again. Bounded both ways, explicitly: an id is remembered for `retainMs`
 * (default 24 h: more than the sidecar's default signature lifetime of 30 min, docs/protocol.md
 * "Signatures"; in 0G mode `answer.created` refuses anything older than a few minutes anyway) and at
 * most `maxIds` are kept (default 100 000, about 10 MB), the oldest forgotten first.
 */
export class AcceptedIds {
  /** id → when it was accepted; a Map iterates in insertion order, so the oldest come first. */
  private readonly ids = new Map<string, number>();

  constructor(
    private readonly options: { retainMs: number; maxIds: number; now: () => number } = {
      retainMs: 24 * 3600 * 1000,
      maxIds: 100_000,
      now: Date.now,
    },
  ) {}

  /** Remembers `id`; false when it was already accepted (a replay). Checking and noting are one step. */
  accept(id: string): boolean {
    const now = this.options.now();
    this.expire(now);
    if (this.ids.has(id)) return false;
    this.ids.set(id, now);
    if (this.ids.size > this.options.maxIds) {
      const oldest = this.ids.keys().next();
      if (oldest.done !== true) this.ids.delete(oldest.value);
    }
    return true;
  }

  get size(): number {
    return this.ids.size;
  }

  private expire(now: number): void {
    for (const [id, at] of this.ids) {
      if (now - at < this.options.retainMs) return;
      this.ids.delete(id);
    }
  }
}
