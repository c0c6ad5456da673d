import type { PendingSignatures } from './pending.js';
import type { SignatureRecord, SignatureStore } from './signature-store.js';

export interface SignatureLookupOptions {
  store: SignatureStore;
  pending: PendingSignatures;
  /** How long a lookup waits for a response of this replica that is still being sent. */
  pendingWaitMs: number;
  /**
   * Re-reads before a miss is final, for a store shared by replicas: a stream's record is written
   * after its last byte, so a client that asks another replica at once may be a few ms early.
   * Empty for a store only this replica writes.
   */
  rereadDelaysMs: readonly number[];
}

/**
 * Finds the record for a response id, knowing the store's topology so the HTTP layer does not:
 * a plain read first (`get`), and only when that misses and the record may still appear (`mayAppear`),
 * a bounded wait (`settle`), which the route runs under its own concurrency budget.
 */
export class SignatureLookup {
  constructor(private readonly options: SignatureLookupOptions) {}

  get(id: string): Promise<SignatureRecord | undefined> {
    return this.options.store.get(id);
  }

  /** A miss may still turn into a record: the id is in flight here, or another replica may write it. */
  mayAppear(id: string): boolean {
    return this.options.pending.has(id) || this.options.rereadDelaysMs.length > 0;
  }

  /** Waits for the id to settle here, re-reads a shared store, and returns what is there then. */
  async settle(id: string): Promise<SignatureRecord | undefined> {
    const { store, pending, pendingWaitMs, rereadDelaysMs } = this.options;
    if (pending.has(id)) {
      await pending.wait(id, pendingWaitMs);
      const record = await store.get(id);
      if (record !== undefined) return record;
    }
    for (const delay of rereadDelaysMs) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      const record = await store.get(id);
      if (record !== undefined) return record;
    }
    return undefined;
  }
}
