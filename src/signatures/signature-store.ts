/** One signed request/response pair, as `GET /signature/{id}` serves it. */
export interface SignatureRecord {
  /** `sha256hex(request bytes):sha256hex(response bytes)`. */
  text: string;
  ecdsa: { signature: string; address: string };
  ed25519: { signature: string; address: string };
}

/**
 * Proof that one response holds an id: made by `claim`, handed back to `put`. Opaque to callers; a
 * store only fills an id whose claim it made (or one that no other response holds).
 */
export interface SignatureClaim {
  readonly id: string;
  readonly token: string;
}

/**
 * Where signature records live until clients fetch them. One file per implementation (memory, Redis,
 * tiered). Ids are case-insensitive (an older 0G broker lower-cases them): implementations key by the
 * lower-cased id.
 *
 * Ids are never reused (docs/protocol.md, Response ids): a response first `claim`s its id, atomically
 * and for as long as a record would live; a taken id (stored, or claimed by a response still in
 * flight, here or on another replica sharing the store) is refused, and the proxy gives the response
 * a fresh id instead. `put` fills only the claim it is handed and never replaces a record.
 */
export interface SignatureStore {
  /** Claims `id` for one response; undefined when a record or another claim already holds it. */
  claim(id: string): Promise<SignatureClaim | undefined>;
  /**
   * Stores the record under a claimed id. Returns false (and stores nothing) when the id is held by
   * something other than this claim: another response's record or claim.
   */
  put(claim: SignatureClaim, record: SignatureRecord): Promise<boolean>;
  /** The record for `id`; undefined when unknown, expired, or claimed but not yet signed. */
  get(id: string): Promise<SignatureRecord | undefined>;
  close?(): Promise<void>;
}
