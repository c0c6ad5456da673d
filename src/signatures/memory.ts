import { type PackedRecord, packRecord, unpackRecord } from './packed-record.js';
import type { SignatureRecord, SignatureStore } from './signature-store.js';

export interface MemoryStoreOptions {
  ttlMs: number;
  capacity: number;
  now?: () => number;
  /** Called when a record is dropped for capacity before its TTL ran out (a metric and a log line). */
  onEarlyEviction?: (info: { ageMs: number; evictedTotal: number }) => void;
}

interface Entry {
  /** Packed when canonical (always, for records our signers make); kept as given otherwise. */
  record: PackedRecord | SignatureRecord;
  expiresAt: number;
}

const isPacked = (r: PackedRecord | SignatureRecord): r is PackedRecord => 'packed' in r;

/**
 * A bounded in-memory store. A Map keeps insertion order and every entry has the same TTL, so the
 * oldest entry is always first: expiry sweeps from the front and stops at the first live entry, and
 * capacity eviction drops the front. No timers, so nothing to leak or unref.
 */
export class MemorySignatureStore implements SignatureStore {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private evictedEarly = 0;

  constructor(private readonly options: MemoryStoreOptions) {
    if (options.capacity < 1) throw new RangeError('capacity must be ≥ 1');
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Records dropped for capacity before their TTL. */
  get earlyEvictions(): number {
    return this.evictedEarly;
  }

  async put(id: string, record: SignatureRecord): Promise<void> {
    const now = this.now();
    this.sweep(now);
    const key = id.toLowerCase();
    this.entries.delete(key);
    while (this.entries.size >= this.options.capacity) {
      const first = this.entries.entries().next();
      if (first.done) break;
      const [oldKey, oldEntry] = first.value;
      this.entries.delete(oldKey);
      this.evictedEarly++;
      this.options.onEarlyEviction?.({
        ageMs: now - (oldEntry.expiresAt - this.options.ttlMs),
        evictedTotal: this.evictedEarly,
      });
    }
    this.entries.set(key, { record: packRecord(record) ?? record, expiresAt: now + this.options.ttlMs });
  }

  async get(id: string): Promise<SignatureRecord | undefined> {
    const entry = this.entries.get(id.toLowerCase());
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) return undefined;
    return isPacked(entry.record) ? unpackRecord(entry.record) : entry.record;
  }

  async close(): Promise<void> {
    this.entries.clear();
  }

  private sweep(now: number): void {
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt > now) break;
      this.entries.delete(key);
    }
  }
}
