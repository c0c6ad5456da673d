import { beforeAll, describe, expect, it } from 'vitest';
import type { Signers } from '../../src/keys/index.js';
import {
  MemorySignatureStore,
  type RemoteSignatureStore,
  type SignatureClaim,
  type SignatureRecord,
  TieredSignatureStore,
} from '../../src/signatures/index.js';
import { responseId, signedRecord, storeRecord, testSigners } from './redis-records.js';
import { waitFor } from './redis-server.js';

/**
 * TieredSignatureStore against a scripted remote tier: runs without Redis, and covers what a real
 * server cannot be made to do on cue (fail one write of a batch, report ready while failing).
 */
class FakeRemote implements RemoteSignatureStore {
  readonly data = new Map<string, { record: SignatureRecord; ttlMs: number }>();
  /** Ids claimed and not yet filled, with their tokens (what `SET NX` holds in Redis). */
  readonly claims = new Map<string, string>();
  private connected = true;
  /** How often the store asked whether the remote is connected (each probe asks). */
  readyChecks = 0;
  failing = false;
  /** A promise that never settles (a hung Redis), instead of failing at once. */
  hanging = false;
  writes = 0;
  claimsTried = 0;
  pings = 0;
  closed = false;
  private readonly listeners: Array<() => void> = [];

  get ready(): boolean {
    this.readyChecks++;
    return this.connected;
  }

  set ready(value: boolean) {
    this.connected = value;
  }

  onReady(listener: () => void): void {
    this.listeners.push(listener);
  }

  comeBack(): void {
    this.failing = false;
    this.hanging = false;
    this.ready = true;
    for (const l of this.listeners) l();
  }

  private check(): Promise<void> {
    if (this.hanging) return new Promise(() => undefined);
    if (this.failing || !this.ready) return Promise.reject(new Error('The client is offline'));
    return Promise.resolve();
  }

  async claim(id: string): Promise<SignatureClaim | undefined> {
    return this.claimWith(id, 'remote-token');
  }

  async claimWith(id: string, token: string): Promise<SignatureClaim | undefined> {
    this.claimsTried++;
    await this.check();
    const key = id.toLowerCase();
    if (this.data.has(key) || this.claims.has(key)) return undefined;
    this.claims.set(key, token);
    return { id, token };
  }

  async put(claim: SignatureClaim, record: SignatureRecord): Promise<boolean> {
    return this.putFor(claim, record, 60_000);
  }

  async putFor(claim: SignatureClaim, record: SignatureRecord, ttlMs: number): Promise<boolean> {
    this.writes++;
    await this.check();
    const key = claim.id.toLowerCase();
    const held = this.claims.get(key);
    if (this.data.has(key) || (held !== undefined && held !== claim.token)) return false;
    this.claims.delete(key);
    this.data.set(key, { record, ttlMs });
    return true;
  }

  async get(id: string): Promise<SignatureRecord | undefined> {
    await this.check();
    return this.data.get(id.toLowerCase())?.record;
  }

  async ping(): Promise<void> {
    this.pings++;
    await this.check();
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const TTL = 60_000;

describe('TieredSignatureStore (scripted remote)', () => {
  let signers: Signers;
  beforeAll(async () => {
    signers = await testSigners();
  });

  const tiered = (remote: FakeRemote, extra: { retryBufferSize?: number; now?: () => number } = {}) =>
    new TieredSignatureStore({
      local: new MemorySignatureStore({
        ttlMs: TTL,
        capacity: 1000,
        ...(extra.now ? { now: extra.now } : {}),
      }),
      remote,
      ttlMs: TTL,
      retryBufferSize: extra.retryBufferSize ?? 100,
      retryIntervalMs: 10,
      ...(extra.now ? { now: extra.now } : {}),
    });

  it('writes through to both tiers and reads the remote tier on a local miss', async () => {
    const remote = new FakeRemote();
    const store = tiered(remote);
    const id = responseId();
    const record = signedRecord(signers);
    await storeRecord(store, id, record);
    expect(remote.data.get(id)?.record).toEqual(record);
    expect(remote.data.get(id)?.ttlMs).toBe(TTL);
    const elsewhere = signedRecord(signers);
    remote.data.set('chatcmpl-other', { record: elsewhere, ttlMs: TTL });
    expect(await store.get('CHATCMPL-OTHER')).toEqual(elsewhere);
    expect(await store.get(id)).toEqual(record);
    await store.close();
    expect(remote.closed).toBe(true);
  });

  it('keeps accepting writes while the remote fails, serves them locally, and replays them in order', async () => {
    const remote = new FakeRemote();
    const store = tiered(remote);
    remote.failing = true;
    const ids = [responseId(), responseId(), responseId()];
    for (const id of ids) await storeRecord(store, id, signedRecord(signers));
    expect(store.remoteAvailable).toBe(false);
    expect(store.buffered).toBe(3);
    // One failed claim opened the breaker: the next two were buffered without trying the remote.
    expect(remote.claimsTried).toBe(1);
    expect(remote.writes).toBe(0);
    for (const id of ids) expect(await store.get(id)).toBeDefined();
    expect(await store.get('chatcmpl-remote-only')).toBeUndefined();
    remote.comeBack();
    await waitFor('the replay', () => store.buffered === 0 && store.remoteAvailable, 2_000);
    expect([...remote.data.keys()]).toEqual(ids);
    expect(store.replayedWrites).toBe(3);
    await store.close();
  });

  it('probes on a timer when no reconnect event comes (remote answered slowly, socket stayed up)', async () => {
    const remote = new FakeRemote();
    const store = tiered(remote);
    remote.failing = true;
    await storeRecord(store, responseId(), signedRecord(signers));
    remote.failing = false;
    await waitFor('the timed probe to replay', () => store.buffered === 0 && store.remoteAvailable, 2_000);
    expect(remote.data.size).toBe(1);
    await store.close();
  });

  it('keeps probing while the remote stays disconnected, and replays once it connects', async () => {
    const remote = new FakeRemote();
    remote.ready = false;
    const store = tiered(remote);
    await storeRecord(store, responseId(), signedRecord(signers));
    const checks = remote.readyChecks;
    await waitFor('two probes while disconnected', () => remote.readyChecks >= checks + 2, 2_000);
    remote.comeBack();
    await waitFor('the replay', () => store.buffered === 0 && store.remoteAvailable, 2_000);
    expect(remote.data.size).toBe(1);
    await store.close();
  });

  it('tells the sidecar at start whether the remote answers, within a bound', async () => {
    const remote = new FakeRemote();
    remote.ready = false;
    const store = tiered(remote);
    expect(await store.whenAvailable(30)).toBe(false);
    const waiting = store.whenAvailable(5_000);
    remote.comeBack();
    expect(await waiting).toBe(true);
    expect(await store.whenAvailable(0)).toBe(true);
    expect(remote.pings).toBeGreaterThanOrEqual(1);
    await store.close();
  });

  it('drops the oldest buffered writes beyond the buffer size, and counts them', async () => {
    const remote = new FakeRemote();
    remote.ready = false;
    const store = tiered(remote, { retryBufferSize: 2 });
    const ids = Array.from({ length: 5 }, responseId);
    for (const id of ids) await storeRecord(store, id, signedRecord(signers));
    expect(store.buffered).toBe(2);
    expect(store.droppedWrites).toBe(3);
    for (const id of ids) expect(await store.get(id)).toBeDefined();
    remote.comeBack();
    await waitFor('the replay', () => store.buffered === 0, 2_000);
    expect([...remote.data.keys()]).toEqual(ids.slice(3));
    await store.close();
  });

  it('replays each write with the TTL it has left and drops writes that expired while buffered', async () => {
    let now = 1_000_000;
    const remote = new FakeRemote();
    remote.ready = false;
    const store = tiered(remote, { now: () => now });
    const old = responseId();
    await storeRecord(store, old, signedRecord(signers));
    now += 50_000;
    const young = responseId();
    await storeRecord(store, young, signedRecord(signers));
    now += 15_000; // `old` is 65 s old (expired), `young` has 45 s left
    remote.comeBack();
    await waitFor('the replay', () => store.buffered === 0, 2_000);
    expect(remote.data.has(old)).toBe(false);
    expect(remote.data.get(young)?.ttlMs).toBe(45_000);
    await store.close();
  });

  it('once a remote write has failed, never waits on a hung remote: later writes and reads skip it', async () => {
    const remote = new FakeRemote();
    const store = tiered(remote);
    await storeRecord(store, responseId(), signedRecord(signers));
    // A hung remote never settles here; the real store bounds each command (redis.test.ts). Model the
    // bounded failure: the first write fails, the breaker opens, later calls never touch the remote.
    remote.failing = true;
    await storeRecord(store, responseId(), signedRecord(signers));
    remote.hanging = true;
    const writes = remote.writes;
    await storeRecord(store, responseId(), signedRecord(signers));
    expect(await store.get('chatcmpl-nowhere')).toBeUndefined();
    expect(remote.writes).toBe(writes);
    expect(store.buffered).toBe(2);
    remote.comeBack();
    await waitFor('the replay', () => store.buffered === 0, 2_000);
    await store.close();
  });

  it('turns a failed remote read into a local answer, never a rejection', async () => {
    const remote = new FakeRemote();
    const store = tiered(remote);
    const id = responseId();
    await storeRecord(store, id, signedRecord(signers));
    remote.failing = true;
    expect(await store.get('chatcmpl-elsewhere')).toBeUndefined();
    expect(store.remoteAvailable).toBe(false);
    expect(await store.get(id)).toBeDefined();
    await store.close();
  });

  it('with a zero buffer, counts every failed write as dropped', async () => {
    const remote = new FakeRemote();
    remote.ready = false;
    const store = tiered(remote, { retryBufferSize: 0 });
    await storeRecord(store, responseId(), signedRecord(signers));
    expect(store.buffered).toBe(0);
    expect(store.droppedWrites).toBe(1);
    await store.close();
  });

  it('hands buffered writes over at close when the remote is back, and reports what it could not', async () => {
    const remote = new FakeRemote();
    remote.ready = false;
    const warnings: string[] = [];
    const logger = { info: () => undefined, warn: (_: unknown, msg: string) => warnings.push(msg) };
    const store = new TieredSignatureStore({
      local: new MemorySignatureStore({ ttlMs: TTL, capacity: 10 }),
      remote,
      ttlMs: TTL,
      retryBufferSize: 10,
      retryIntervalMs: 60_000,
      logger: logger as never,
    });
    await storeRecord(store, responseId(), signedRecord(signers));
    remote.ready = true; // back, but no ready event and the next probe is a minute away
    await store.close();
    expect(remote.data.size).toBe(1);
    expect(warnings).toEqual([]);

    const down = new FakeRemote();
    down.ready = false;
    const lossy = new TieredSignatureStore({
      local: new MemorySignatureStore({ ttlMs: TTL, capacity: 10 }),
      remote: down,
      ttlMs: TTL,
      retryBufferSize: 10,
      logger: logger as never,
    });
    await storeRecord(lossy, responseId(), signedRecord(signers));
    await lossy.close();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/never received/);
  });

  it('withdraws its own record when a replayed write finds the id taken by another replica', async () => {
    const remote = new FakeRemote();
    remote.ready = false;
    const store = tiered(remote);
    const id = responseId();
    // Claimed while the remote was down: unique on this replica only.
    await storeRecord(store, id, signedRecord(signers));
    expect(await store.get(id)).toBeDefined();
    // Meanwhile another replica took the id in the shared tier.
    const theirs = signedRecord(signers);
    remote.data.set(id.toLowerCase(), { record: theirs, ttlMs: TTL });
    remote.comeBack();
    await waitFor('the replay', () => store.buffered === 0 && store.remoteAvailable, 2_000);
    expect(remote.data.get(id.toLowerCase())?.record).toEqual(theirs);
    expect(store.conflicts).toBe(1);
    // Neither record is served here for an id two clients received.
    expect(await store.get(id)).toEqual(theirs);
    expect(await store.claim(id)).toBeUndefined();
    await store.close();
  });

  it('refuses an id another replica holds, live, and keeps it taken locally', async () => {
    const remote = new FakeRemote();
    const store = tiered(remote);
    const id = responseId();
    remote.claims.set(id.toLowerCase(), 'elsewhere');
    expect(await store.claim(id)).toBeUndefined();
    expect(await store.claim(id)).toBeUndefined();
    await store.close();
  });
});
