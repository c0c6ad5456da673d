import { writeFileSync } from 'node:fs';
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DstackClient } from '../../src/dstack/index.js';
import { TappClient } from '../../src/tapp/index.js';
import { DstackTlsSource, FileTlsSource, TappTlsSource, type TlsIdentity } from '../../src/tls/index.js';
import { sendJson, startFakeAgent } from '../dstack/agent-server.js';
import { type FakeTapp, startFakeTapp } from '../tapp/tapp-server.js';
import { makePair, opensslChain, tempDir } from './certs.js';

const tmp = tempDir();

/** The error a promise rejects with (TlsConfigError or SidecarError). */
const rejection = async (promise: Promise<unknown>): Promise<Error> => {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    return error as Error;
  }
  throw new Error('expected a rejection');
};
afterAll(() => tmp.cleanup());

/** The next identity or error a watch reports, as a promise (no sleeping: the poll fires it). */
const nextEvent = (source: FileTlsSource) => {
  const events: Array<{ identity?: TlsIdentity; error?: Error }> = [];
  let wake: (() => void) | undefined;
  const stop = source.watch(
    (identity) => {
      events.push({ identity });
      wake?.();
    },
    (error) => {
      events.push({ error });
      wake?.();
    },
  );
  const next = async () => {
    while (events.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return events.shift() as { identity?: TlsIdentity; error?: Error };
  };
  return { next, stop };
};

describe('FileTlsSource', () => {
  it('loads the pair, reports a renewal, and reports (without adopting) a bad pair', async () => {
    const a = await makePair();
    const b = await makePair();
    const c = await makePair();
    const certPath = tmp.write('reload.crt', a.cert);
    const keyPath = tmp.write('reload.key', a.key);
    const source = new FileTlsSource({ certPath, keyPath, pollIntervalMs: 20 });
    expect(source.terminates).toBe(true);
    expect((await source.load()).fingerprint).toBe(a.identity.fingerprint);
    const watch = nextEvent(source);
    try {
      // A renewal written as two files (cert, then key): the first poll may see a half-written pair
      // (reported as an error); the complete pair is reported as the new identity.
      writeFileSync(certPath, b.cert);
      writeFileSync(keyPath, b.key);
      let event = await watch.next();
      while (event.identity === undefined) event = await watch.next();
      expect(event.identity.fingerprint).toBe(b.identity.fingerprint);
      // A mismatched pair is an error naming the key file; nothing new is adopted.
      writeFileSync(keyPath, c.key);
      event = await watch.next();
      expect(event.identity).toBeUndefined();
      expect(event.error?.message).toBe(
        `TLS_KEY_PATH (${keyPath}): the private key does not match the certificate's public key`,
      );
    } finally {
      watch.stop();
    }
  });

  it('certificate only: binds without terminating; unreadable files name the variable', async () => {
    const { chain, spkiSha256 } = opensslChain(tmp.dir);
    const certPath = tmp.write('bind.crt', chain);
    const source = new FileTlsSource({ certPath, pollIntervalMs: 1000 });
    expect(source.terminates).toBe(false);
    expect(source.kind).toBe('bind');
    const identity = await source.load();
    expect(identity.fingerprint).toBe(spkiSha256);
    expect(identity.key).toBeUndefined();
    const missing = new FileTlsSource({ certPath: `${tmp.dir}/nope.crt`, pollIntervalMs: 1000 });
    expect((await rejection(missing.load())).message).toBe(
      `TLS_CERT_PATH: cannot read ${tmp.dir}/nope.crt (ENOENT)`,
    );
  });
});

describe('DstackTlsSource against a fake guest agent', () => {
  it('asks GetTlsKey for the hostnames (no RA-TLS, server auth) and serves the chain it returns', async () => {
    const { chain, key, spkiSha256 } = opensslChain(tmp.dir);
    const agent = await startFakeAgent((req, res) => {
      expect(req.path).toBe('/GetTlsKey');
      sendJson(res, {
        key,
        certificate_chain: chain.split(/(?<=-----END CERTIFICATE-----\n)/).filter((s) => s !== ''),
      });
    });
    try {
      const source = new DstackTlsSource({
        client: new DstackClient({ socketPath: agent.socketPath }),
        hostnames: ['sidecar.example', '10.0.0.1'],
      });
      const identity = await source.load();
      expect(identity.fingerprint).toBe(spkiSha256);
      expect(identity.source).toBe('dstack');
      expect(JSON.parse(agent.requests[0]?.body.toString() ?? '')).toEqual({
        subject: 'sidecar.example',
        alt_names: ['sidecar.example', '10.0.0.1'],
        usage_ra_tls: false,
        usage_server_auth: true,
        usage_client_auth: false,
      });
    } finally {
      await agent.close();
    }
  });

  it('a key that is not the certificate’s is a start-up error', async () => {
    const a = await makePair();
    const b = await makePair();
    const agent = await startFakeAgent((_req, res) =>
      sendJson(res, { key: b.key, certificate_chain: [a.cert] }),
    );
    try {
      const source = new DstackTlsSource({
        client: new DstackClient({ socketPath: agent.socketPath }),
        hostnames: ['localhost'],
      });
      expect((await rejection(source.load())).message).toBe(
        "dstack GetTlsKey key: the private key does not match the certificate's public key",
      );
    } finally {
      await agent.close();
    }
  });
});

type TlsCall = ServerUnaryCall<{ app_id: string }, unknown>;

describe('TappTlsSource against a real gRPC server', () => {
  let tapp: FakeTapp | undefined;
  afterEach(async () => {
    await tapp?.close();
    tapp = undefined;
  });

  const serve = async (reply: object, seen: string[] = []) => {
    tapp = await startFakeTapp({
      GetAppTlsCert: (call: TlsCall, cb: sendUnaryData<unknown>) => {
        seen.push(call.request.app_id);
        cb(null, reply);
      },
    });
    return new TappTlsSource({ client: new TappClient({ endpoint: tapp.endpoint }), appId: 'teeml-app' });
  };

  it('takes key_pem and cert_pem and checks public_key_sha256 (with or without 0x)', async () => {
    const a = await makePair();
    for (const stated of [a.identity.fingerprint, `0x${a.identity.fingerprint}`]) {
      const seen: string[] = [];
      const source = await serve(
        {
          success: true,
          key_pem: a.key,
          cert_pem: a.cert,
          issuer: 'self-signed',
          public_key_sha256: stated,
          key_source: 'local',
        },
        seen,
      );
      const identity = await source.load();
      expect(identity.fingerprint).toBe(a.identity.fingerprint);
      expect(seen).toEqual(['teeml-app']);
      source.close();
      await tapp?.close();
      tapp = undefined;
    }
  });

  it('refuses a public_key_sha256 that is not the certificate’s SPKI hash', async () => {
    const a = await makePair();
    const source = await serve({
      success: true,
      key_pem: a.key,
      cert_pem: a.cert,
      public_key_sha256: '00'.repeat(32),
    });
    expect((await rejection(source.load())).message).toBe(
      "tapp GetAppTlsCert: public_key_sha256 is not the sha256 of the certificate's SubjectPublicKeyInfo",
    );
    source.close();
  });

  it('an older Tapp (UNIMPLEMENTED) is a 503-style start-up error naming the RPC', async () => {
    tapp = await startFakeTapp({});
    const source = new TappTlsSource({
      client: new TappClient({ endpoint: tapp.endpoint }),
      appId: 'teeml-app',
    });
    expect((await rejection(source.load())).message).toBe(
      'tapp GetAppTlsCert failed: gRPC status UNIMPLEMENTED',
    );
    source.close();
  });
});
