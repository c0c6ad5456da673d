import { OldestFirst } from '../concurrency/index.js';

/** One accepted id and when. */
interface Accepted {
  readonly key: string;
  readonly at: number;
}

/**
 * The response ids of answers the gateway accepted, so that a repeat is refused (`answer.replayed`,
 * issue 21 item 5): a man in the middle (or a 0G broker) that kept a signed answer and its signature
 * record cannot serve them again. Bounded both ways, explicitly: an id is remembered for `retainMs`
 * (default 24 h: more than the sidecar's default signature lifetime of 30 min, docs/protocol.md
 * "Signatures"; in 0G mode `answer.created` refuses anything older than a few minutes anyway) and at
 * most `maxIds` are kept (default 100 000, about 10 MB), the oldest forgotten first.
 */
export class AcceptedIds {
  /** Oldest first (a Map's own order costs O(ids forgotten) per look at its front: OldestFirst). */
  private readonly ids = new OldestFirst<string, Accepted>();

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
    this.ids.add({ key: id, at: now });
    if (this.ids.size > this.options.maxIds) {
      const oldest = this.ids.oldest();
      if (oldest !== undefined) this.ids.delete(oldest.key);
    }
    return true;
  }

  get size(): number {
    return this.ids.size;
  }

  private expire(now: number): void {
    for (let oldest = this.ids.oldest(); oldest !== undefined; oldest = this.ids.oldest()) {
      if (now - oldest.at < this.options.retainMs) return;
      this.ids.delete(oldest.key);
    }
  }
}
