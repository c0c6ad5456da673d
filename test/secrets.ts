/**
 * Strings that must never appear in any log line of the test suite: the fixed test keys, the
 * tokens the tests configure, and the marker prompt/completion texts the e2e tests send. Tests that
 * exercise secret-bearing paths use these exact values so the suite-wide grep can catch a leak.
 */
export const SECRET_MARKERS = {
  secp256k1Key: '4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318',
  ed25519Seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
  adminToken: 'admin-token-0123456789abcdef',
  authToken: 'client-token-0123456789',
  upstreamKey: 'upstream-key-123',
  prompt: 'secret prompt 7f3a',
  completion: 'secret completion 9c1d',
  /** Any PEM private key (TLS keys are made per test, so the marker is the PEM armour itself). */
  tlsPrivateKey: 'PRIVATE KEY-----',
  /** Sent end-to-end encrypted: the sidecar holds them in plaintext only between decrypt and encrypt. */
  e2eePrompt: 'sealed prompt 41b7 for the model only',
  e2eeCompletion: 'sealed answer 8e02 for the client only',
  /** The 0G wallet key the 0G tests pay with (ZG_PRIVATE_KEY); funded on the local chain only. */
  zgWalletKey: '3f1e9a7c2b5d84e6f0a1c3b5d7e9f2a4c6e8b0d2f4a6c8e0b2d4f6a8c0e2b4d6',
} as const;
