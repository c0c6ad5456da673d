/**
 * `node --expose-gc --import tsx bench/store-memory.ts`: heap bytes per record in the memory store,
 * filled in this process as the proxy fills it (claim, then a lazily signed record), after a full
 * GC; then again after one ECDSA lookup per record. Deterministic, unlike RSS under load: for
 * measuring a change to the store's layout.
 */
import { createHash } from 'node:crypto';
import { createSigners, EphemeralKeySource } from '../src/keys/index.js';
import { lazyRecord, MemorySignatureStore } from '../src/signatures/index.js';

const N = Number(process.argv[2] ?? '100000');
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
const heap = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const signers = createSigners(await new EphemeralKeySource().load());
const store = new MemorySignatureStore({ ttlMs: 20 * 60_000, capacity: N + 1 });
const hex = (i: number): string => createHash('sha256').update(String(i)).digest('hex');
/** A fresh flat string per call, as a parsed response's id is: the store's key is its own copy. */
const idOf = (i: number): string => Buffer.from(`chatcmpl-${hex(i).slice(0, 24)}`).toString('latin1');
// V8 flushes bytecode of unused functions after a few GCs: age it out before the first reading.
for (let i = 0; i < 8; i++) heap();
const before = heap();
for (let i = 0; i < N; i++) {
  const claim = store.claimNow(idOf(i));
  if (claim === undefined) throw new Error('taken');
  await store.put(claim, lazyRecord(signers, `${hex(i)}:${hex(i + N)}`));
}
const filled = heap();
for (let i = 0; i < N; i++) (await store.get(idOf(i)))?.ecdsa.signature;
const looked = heap();
console.log(`records: ${N}`);
console.log(`heap per record, stored: ${Math.round((filled - before) / N)} B`);
console.log(`heap per record, after one ECDSA lookup each: ${Math.round((looked - before) / N)} B`);
// Keeps the store alive to the end: a top-level-await module's dead locals may be collected early.
if (store.size !== N) throw new Error('records were dropped');
