/**
 * A Map of values that carry their own key, which finds its oldest value (the first added of those it
 * holds) in constant time, whatever was deleted before it.
 *
 * A JavaScript Map iterates in insertion order, but V8 leaves a hole for each deleted entry until the
 * table is rebuilt, and an iterator walks every hole before the first live entry. A map that is
 * trimmed from its front one entry at a time (a store evicting its oldest record, ids expiring) holds
 * tens of thousands of such holes between rebuilds, and `map.keys().next()` on it costs ~50–190 µs at
 * 200,000 entries (BENCHMARKS.md, issue 23, fifth round). Here the order is kept beside the Map in an
 * array read from a moving head; a value that was deleted or replaced under its key is skipped when it
 * reaches the head.
 *
 * The array is cut when its consumed front is at least half of it, and rebuilt from the held values
 * when it grows past twice their number (plus a slack, so small maps never are): each operation costs
 * O(1) amortized, and the array's length stays within about twice the size.
 */
export class OldestFirst<K, V extends { readonly key: K }> {
  readonly #values = new Map<K, V>();
  #order: Array<V | undefined> = [];
  #head = 0;

  get size(): number {
    return this.#values.size;
  }

  /** Values in the order array, held or not yet skipped (for tests of the bound above). */
  get queued(): number {
    return this.#order.length - this.#head;
  }

  get(key: K): V | undefined {
    return this.#values.get(key);
  }

  has(key: K): boolean {
    return this.#values.has(key);
  }

  /** Adds `value` as the newest; a value held under the same key is replaced (and no longer oldest). */
  add(value: V): void {
    this.#values.set(value.key, value);
    this.#order.push(value);
    if (this.queued > 2 * this.#values.size + SLACK) {
      this.#order = this.#order.slice(this.#head).filter((v) => v !== undefined && this.#holds(v));
      this.#head = 0;
    }
  }

  delete(key: K): boolean {
    return this.#values.delete(key);
  }

  /**
   * The oldest value held, or undefined when there is none; the dead ones before it are dropped. An
   * owner trims its front by deleting this value's key and asking again.
   */
  oldest(): V | undefined {
    while (this.#head < this.#order.length) {
      const value = this.#order[this.#head] as V;
      if (this.#holds(value)) return value;
      this.#order[this.#head++] = undefined;
      if (this.#head >= SLACK && 2 * this.#head >= this.#order.length) {
        this.#order = this.#order.slice(this.#head);
        this.#head = 0;
      }
    }
    this.#order = [];
    this.#head = 0;
    return undefined;
  }

  clear(): void {
    this.#values.clear();
    this.#order = [];
    this.#head = 0;
  }

  #holds(value: V): boolean {
    return this.#values.get(value.key) === value;
  }
}

/** Values the order array may hold beyond its bound before it is cut or rebuilt. */
const SLACK = 1024;
