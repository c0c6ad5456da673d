import { OldestFirst } from '../concurrency/index.js';
import type { Signers } from '../keys/index.js';
import { claimToken } from './claim-token.js';
import { type PackedRecord, packRecord, unpackRecord } from './packed-record.js';
import type { SignatureClaim, SignatureRecord, SignatureStore } from './signature-store.js';

export interface MemoryStoreOptions {
  ttlMs: number;
  capacity: number;
  now?: () => number;
  /** Called when a record is dropped for capacity before its TTL ran out (a metric and a log line). */
  onEarlyEviction?: (info: { ageMs: number; evictedTotal: number }) => void;
}

interface Entry {
  /** The id, lowercased. */
  readonly key: string;
  /**
   * Packed when canonical (always, for records our signers make); a lazily signed record of this
   * store's signers as its bare packed string (no wrapper object: ~60 B less per record); kept as
   * given otherwise; a claim token while the response that holds the id is still being sent.
   */
  record: string | PackedRecord | SignatureRecord | { claim: string };
  /**
   * ms after the store's creation: a small integer V8 keeps inline (a Unix time in ms does not fit
   * one and costs a 16-byte heap number per entry).
   */
  expiresAt: number;
}

/** Not a hex token: no claim can ever match it. */
const WITHDRAWN = 'withdrawn';

const isPacked = (r: Entry['record']): r is PackedRecord => typeof r === 'object' && 'packed' in r;
const isClaim = (r: Entry['record']): r is { claim: string } => typeof r === 'object' && 'claim' in r;

/**
 * A bounded in-memory store. Entries are kept in the order they were added and every entry has the
 * same TTL, so the oldest entry is always first: expiry sweeps from the front and stops at the first
 * live entry, and capacity eviction drops the front. The entries are an OldestFirst, not a plain Map,
 * whose iteration costs O(entries deleted) per look at its front. No timers, so nothing to leak or
 * unref.
 *
 * A claim is an entry too (it counts against capacity and expires like a record), so an id stays
 * taken from the moment a response claims it until the record would have expired. Filling a claim
 * keeps the entry's place and expiry. A claim evicted for capacity cannot be filled by another
 * response: `put` checks the claim's random token.
 */
export class MemorySignatureStore implements SignatureStore {
  private readonly entries = new OldestFirst<string, Entry>();
  private readonly clock: () => number;
  private readonly epoch: number;
  private evictedEarly = 0;
  /** The signers of the lazily signed records stored as bare strings (one process, one key pair). */
  private lazySigners: Signers | undefined;

  constructor(private readonly options: MemoryStoreOptions) {
    if (options.capacity < 1) throw new RangeError('capacity must be ≥ 1');
    this.clock = options.now ?? Date.now;
    this.epoch = this.clock();
  }

  /** The store's own time: ms since it was made. */
  private now(): number {
    return this.clock() - this.epoch;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Records dropped for capacity before their TTL. */
  get earlyEvictions(): number {
    return this.evictedEarly;
  }

  async claim(id: string): Promise<SignatureClaim | undefined> {
    return this.claimNow(id);
  }

  /** Synchronous claim: the tiered store relies on it having no await between check and set. */
  claimNow(id: string): SignatureClaim | undefined {
    const now = this.now();
    this.sweep(now);
    const key = id.toLowerCase();
    const existing = this.entries.get(key);
    if (existing !== undefined && existing.expiresAt > now) return undefined;
    const token = claimToken();
    this.entries.delete(key);
    this.add({ key, record: { claim: token }, expiresAt: now + this.options.ttlMs }, now);
    return { id, token };
  }

  async put(claim: SignatureClaim, record: SignatureRecord): Promise<boolean> {
    const now = this.now();
    this.sweep(now);
    const key = claim.id.toLowerCase();
    const packed = this.compact(record);
    const entry = this.entries.get(key);
    if (entry !== undefined && entry.expiresAt > now) {
      if (!isClaim(entry.record) || entry.record.claim !== claim.token) return false;
      entry.record = packed;
      return true;
    }
    // The claim expired or was evicted and nobody took the id since: store it as a new entry.
    this.entries.delete(key);
    this.add({ key, record: packed, expiresAt: now + this.options.ttlMs }, now);
    return true;
  }

  /**
   * Takes back the record (or claim) under `id`; the id stays taken until its expiry, with nothing
   * to serve under it. Used when the shared tier shows another replica holds the id.
   */
  withdraw(id: string): void {
    const entry = this.entries.get(id.toLowerCase());
    if (entry !== undefined) entry.record = { claim: WITHDRAWN };
  }

  async get(id: string): Promise<SignatureRecord | undefined> {
    const entry = this.entries.get(id.toLowerCase());
    if (entry === undefined || entry.expiresAt <= this.now() || isClaim(entry.record)) return undefined;
    let stored: Entry['record'] = entry.record;
    if (typeof stored !== 'string' && !isPacked(stored)) return stored;
    const packed: PackedRecord =
      typeof stored === 'string'
        ? {
            packed: stored,
            ecdsaAddress: (this.lazySigners as Signers).ecdsa.address,
            ed25519Address: (this.lazySigners as Signers).ed25519.address,
            signers: this.lazySigners,
          }
        : stored;
    // A lazily signed record: keep a signature once it is made, unless the entry changed meanwhile
    // (withdrawn, or filled by another read).
    return unpackRecord(packed, (record) => {
      if (entry.record !== stored) return;
      entry.record = this.compact(record);
      stored = entry.record;
    });
  }

  async close(): Promise<void> {
    this.entries.clear();
  }

  /**
   * Adds an entry as the newest (its key is not in the map), evicting the oldest for capacity first.
   * The eviction callback runs once the entry is in place, so one that calls back into the store
   * sees it whole: its own claims are never overwritten, and the order stays the order of adding.
   */
  private add(entry: Entry, now: number): void {
    const evicted = this.makeRoom();
    this.entries.add(entry);
    for (const old of evicted) {
      this.evictedEarly++;
      this.options.onEarlyEviction?.({
        ageMs: now - (old.expiresAt - this.options.ttlMs),
        evictedTotal: this.evictedEarly,
      });
    }
  }

  /** The smallest form of a record this store can serve back as it was. */
  private compact(record: SignatureRecord): Entry['record'] {
    const packed = packRecord(record);
    if (packed === undefined) return record;
    if (packed.signers === undefined) return packed;
    this.lazySigners ??= packed.signers;
    // The bare string stands for the common lazy record only: a signed model name needs the object.
    return packed.signers === this.lazySigners && packed.model === undefined ? packed.packed : packed;
  }

  /** Drops the oldest entries until one more fits; returns them. */
  private makeRoom(): Entry[] {
    const evicted: Entry[] = [];
    while (this.entries.size >= this.options.capacity) {
      const oldEntry = this.entries.oldest();
      if (oldEntry === undefined) break;
      this.entries.delete(oldEntry.key);
      evicted.push(oldEntry);
    }
    return evicted;
  }

  private sweep(now: number): void {
    for (let entry = this.entries.oldest(); entry !== undefined; entry = this.entries.oldest()) {
      if (entry.expiresAt > now) break;
      this.entries.delete(entry.key);
    }
  }
}
