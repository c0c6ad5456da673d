/** One signed request/response pair, as `GET /signature/{id}` serves it. */
export interface SignatureRecord {
  /** `sha256hex(request bytes):sha256hex(response bytes)`. */
  text: string;
  ecdsa: { signature: string; address: string };
  ed25519: { signature: string; address: string };
}

/**
 * Where signature records live until clients fetch them. One file per implementation (memory, Redis).
 * Ids are case-insensitive (an older 0G broker lower-cases them): implementations key by the
 * lower-cased id.
 */
export interface SignatureStore {
  put(id: string, record: SignatureRecord): Promise<void>;
  get(id: string): Promise<SignatureRecord | undefined>;
  close?(): Promise<void>;
}
