import { createHash, randomBytes } from 'node:crypto';
import { createSigners, EphemeralKeySource, type Signers } from '../../src/keys/index.js';
import {
  type SignatureClaim,
  type SignatureRecord,
  type SignatureStore,
  signPair,
} from '../../src/signatures/index.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Real signers, so the records have exactly the shape the proxy stores (and Redis must give back). */
export const testSigners = async (): Promise<Signers> => createSigners(await new EphemeralKeySource().load());

export const signedRecord = (signers: Signers): SignatureRecord =>
  signPair(signers, sha(randomBytes(16)), sha(randomBytes(16)));

export const responseId = (): string => `chatcmpl-${randomBytes(12).toString('hex')}`;

/** Claims `id` and fills the claim, as the proxy does; fails the test if the id was taken. */
export const storeRecord = async (
  store: Pick<SignatureStore, 'claim' | 'put'>,
  id: string,
  record: SignatureRecord,
): Promise<SignatureClaim> => {
  const claim = await store.claim(id);
  if (claim === undefined) throw new Error(`id ${id} was already taken`);
  if (!(await store.put(claim, record))) throw new Error(`claim for ${id} could not be filled`);
  return claim;
};
