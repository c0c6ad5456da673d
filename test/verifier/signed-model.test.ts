import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createSigners } from '../../src/keys/index.js';
import { signPair } from '../../src/signatures/index.js';
import { CheckList, checkSignedBytes } from '../../src/verifier/index.js';

/**
 * The verifier's signed-text check (the one `verify` and the gateway run) reads both formats
 * (docs/protocol.md, Signed text) and, for NEAR's `model:req:resp`, holds the signed model to the
 * model requested: a valid signature over another model's name is a substituted model, not a pass.
 */
const signers = createSigners({ secp256k1: new Uint8Array(32).fill(5), ed25519: new Uint8Array(32).fill(6) });
const request = new TextEncoder().encode('{"model":"premium","messages":[]}');
const response = new TextEncoder().encode('{"id":"chatcmpl-1","model":"premium","choices":[]}');
const hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const run = (
  signedModel: string | undefined,
  requested: string | undefined,
  algo: 'ecdsa' | 'ed25519',
  compareRequest = true,
) => {
  const record = signPair(signers, hex(request), hex(response), signedModel);
  const list = new CheckList();
  checkSignedBytes(list, {
    kind: 'json',
    request,
    response,
    record: { text: record.text, signature: record[algo].signature, signing_address: record[algo].address },
    signer: { algo, bytes: new Uint8Array(0), display: signers[algo].address },
    model: requested,
    compareRequest,
  });
  return Object.fromEntries(list.results.map((r) => [r.id, `${r.status}: ${r.detail}`]));
};

describe.each(['ecdsa', 'ed25519'] as const)('checkSignedBytes, both signed-text formats (%s)', (algo) => {
  it('accepts the 0G format and the model format naming the requested model', () => {
    for (const signed of [undefined, 'premium']) {
      const checks = run(signed, 'premium', algo);
      expect(checks['signature.json.text']).toMatch(/^pass/);
      expect(checks['signature.json.signer']).toMatch(/^pass/);
    }
    expect(run('premium', 'premium', algo)['signature.json.text']).toContain('model as requested');
  });

  it('fails a valid signature over another model than the one requested', () => {
    const checks = run('cheap-model', 'premium', algo);
    expect(checks['signature.json.text']).toBe('fail: signed model differs from the model requested');
    // The signature itself is sound: it is the model that is wrong.
    expect(checks['signature.json.signer']).toMatch(/^pass/);
  });

  it('without a model given, the one the request bytes name is the one requested (the gateway case)', () => {
    expect(run('cheap-model', undefined, algo)['signature.json.text']).toBe(
      'fail: signed model differs from the model requested',
    );
    expect(run('premium', undefined, algo)['signature.json.text']).toContain('model as requested');
  });

  it('request bytes re-serialized on the way (0G broker): a signed model is reported, not compared', () => {
    expect(run('cheap-model', undefined, algo, false)['signature.json.text']).toContain(
      'signed (not compared)',
    );
  });
});
