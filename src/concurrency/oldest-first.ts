/**
 * The entries of a Map in the order they were added, oldest first, found in constant time whatever
 * was deleted before them.
 *
 * A JavaScript Map iterates in insertion order, but V8 leaves a hole for each deleted entry until the
 * table is rebuilt, and an iterator walks every hole before the first live entry. A map that is
 * trimmed from its front one entry at a time (a store evicting its oldest record, ids expiring) holds
 * tens of thousands of such holes between rebuilds, and `map.keys().next()` on it costs ~50–190 µs at
 * 200,000 entries (BENCHMARKS.md, issue 23, fifth round). The owner keeps its Map for lookups and
 * pushes each value here as it adds it; `oldest()` skips the values that are no longer live (deleted,
 * or replaced under their key) as they reach the front.
 *
 * The array behind it is cut when its consumed front is at least half of it, and rebuilt from the live
 * values when dead ones it has not reached yet outnumber the live: its length stays within about twice
 * the owner's size, and each push costs O(1) amortized.
 */
export class OldestFirst<T> {
  #items: Array<T | undefined> = [];
  #head = 0;

  /** `live(item)`: whether the owner still holds `item` (e.g. `map.get(item.key) === item`). */
  constructor(private readonly live: (item: T) => boolean) {}

  /** Items held, live or not yet skipped (for tests of the bound above). */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Adds the newest item; `size` is how many live items the owner holds now, this one included. */
  push(item: T, size: number): void {
    this.#items.push(item);
    if (this.length > 2 * size + SLACK) {
      this.#items = this.#items.slice(this.#head).filter((x) => x !== undefined && this.live(x));
      this.#head = 0;
    }
  }

  /**
   * The oldest live item, or undefined when there is none; the dead items before it are dropped. An
   * owner trims its front by deleting this item from its own map and asking again.
   */
  oldest(): T | undefined {
    while (this.#head < this.#items.length) {
      const item = this.#items[this.#head] as T;
      if (this.live(item)) return item;
      this.#items[this.#head++] = undefined;
      if (this.#head >= SLACK && 2 * this.#head >= this.#items.length) {
        this.#items = this.#items.slice(this.#head);
        this.#head = 0;
      }
    }
    this.clear();
    return undefined;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

/** Items a queue may hold beyond its bound before it is cut or rebuilt: small queues never are. */
const SLACK = 1024;
