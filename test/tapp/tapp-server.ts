import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  loadPackageDefinition,
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { TAPP_PROTO_PATH } from '../../src/tapp/index.js';
import { sharedFixtures } from '../paths.js';

export interface FakeTapp {
  endpoint: string;
  close(): Promise<void>;
}

/**
 * A real @grpc/grpc-js server implementing tapp_service.TappService from our proto, on a unix socket
 * in a temp dir (or on a loopback port with `tcp: true`).
 */
export const startFakeTapp = async (
  impl: UntypedServiceImplementation,
  options: { tcp?: boolean } = {},
): Promise<FakeTapp> => {
  const definition = loadSync(TAPP_PROTO_PATH, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  const pkg = loadPackageDefinition(definition) as unknown as {
    tapp_service: { TappService: { service: ServiceDefinition } };
  };
  const server = new Server();
  server.addService(pkg.tapp_service.TappService.service, impl);
  const dir = mkdtempSync(join(tmpdir(), 'teeml-tapp-'));
  const address = options.tcp ? '127.0.0.1:0' : `unix://${join(dir, 'tapp.sock')}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, ServerCredentials.createInsecure(), (error, p) =>
      error ? reject(error) : resolve(p),
    ),
  );
  return {
    endpoint: options.tcp ? `127.0.0.1:${port}` : address,
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        rmSync(dir, { recursive: true, force: true });
        resolve();
      }),
  };
};

/**
 * A v4 quote standing in for the one Tapp's attestation agent makes: the real dcap-qvl sample quote
 * with its report_data (v4: offset 568) replaced. Its signature no longer verifies, which the
 * provider does not check (verifiers do); the structure parses like a real quote.
 */
export const fakeV4Quote = (reportData: Uint8Array): Buffer => {
  const quote = Buffer.from(readFileSync(sharedFixtures('tdx/dcap-qvl-sample/tdx_quote')));
  Buffer.from(reportData).copy(quote, 568);
  return quote;
};

export const sha512 = (data: string | Buffer): Buffer => createHash('sha512').update(data).digest();

/**
 * What Tapp does in GetEvidence, written out independently of src/tapp: runtime_data is serde's
 * compact JSON of {nonce, signer} (tls_public_key omitted when empty), report_data its sha512, and
 * runtime_data travels base64 in the evidence JSON.
 */
export const tappEvidence = (nonce: Buffer, signer: string, overrides: { reportData?: Buffer } = {}) => {
  const runtimeData =
    nonce.length > 0
      ? `{"nonce":"0x${nonce.toString('hex')}","signer":"${signer}"}`
      : `{"signer":"${signer}"}`;
  const quote = fakeV4Quote(overrides.reportData ?? sha512(runtimeData));
  const evidence = {
    cc_eventlog: Buffer.from('ccel bytes').toString('base64'),
    quote: quote.toString('base64'),
    runtime_data: Buffer.from(runtimeData).toString('base64'),
  };
  return { runtimeData, quote, evidence: Buffer.from(JSON.stringify(evidence)) };
};
