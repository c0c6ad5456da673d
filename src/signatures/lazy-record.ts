import type { Signers, SigningAlgo } from '../keys/index.js';
import type { SignatureRecord } from './signature-store.js';

/** The signatures of a lazily signed record made so far, and the signers that make the rest. */
export interface LazySignatures {
  readonly signers: Signers;
  ecdsa?: string | undefined;
  ed25519?: string | undefined;
}

const states = new WeakMap<SignatureRecord, LazySignatures>();

/**
 * A record whose signatures are made on first read, one algorithm at a time (BENCHMARKS.md: most
 * lookups ask for one algorithm, and signing both for every response was a third of the CPU a small
 * completion cost). Both signatures are deterministic (RFC 6979, RFC 8032), so a signature made at
 * lookup time is byte-identical to one made at delivery: the text is fixed when the record is made,
 * once the answer is complete, and a record is stored only for an answer whose every byte reached the
 * socket (proxy.ts), so no other text is ever served signed.
 *
 * Only for a store that this process alone reads (memory): a record written to a store shared with
 * other replicas must carry both signatures already, since the replica that serves the lookup may not
 * hold this key (the proxy signs eagerly then; `toJSON` below makes any serializer do so too).
 *
 * `ecdsa` and `ed25519` are own enumerable getters, so the record reads and compares like a plain
 * one; `onSign` tells the store a signature was made, so it can keep it instead of signing again.
 */
export const lazyRecord = (
  signers: Signers,
  text: string,
  made: { ecdsa?: string | undefined; ed25519?: string | undefined } = {},
  onSign?: (record: SignatureRecord) => void,
): SignatureRecord => {
  const state: LazySignatures = { signers, ecdsa: made.ecdsa, ed25519: made.ed25519 };
  const read = (algo: SigningAlgo): { signature: string; address: string } => {
    let signature = state[algo];
    if (signature === undefined) {
      signature = signers[algo].sign(text);
      state[algo] = signature;
      onSign?.(record);
    }
    return { signature, address: signers[algo].address };
  };
  // A literal with getters, inheriting `toJSON`: per record this costs a fraction of three
  // `Object.defineProperty` calls (BENCHMARKS.md, issue 23).
  const record = {
    __proto__: LAZY_RECORD,
    text,
    get ecdsa() {
      return read('ecdsa');
    },
    get ed25519() {
      return read('ed25519');
    },
  } as unknown as SignatureRecord;
  states.set(record, state);
  return record;
};

/**
 * What every lazy record inherits, so it is no own property (the record compares like a plain one):
 * a serializer (a shared store) gets both signatures, never a record another replica cannot serve.
 */
const LAZY_RECORD = {
  toJSON(this: SignatureRecord): SignatureRecord {
    return { text: this.text, ecdsa: this.ecdsa, ed25519: this.ed25519 };
  },
};

/** The signatures made so far when `record` is lazy; undefined for a plain record. */
export const lazySignatures = (record: SignatureRecord): Readonly<LazySignatures> | undefined =>
  states.get(record);
