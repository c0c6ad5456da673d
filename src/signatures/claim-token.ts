import { randomFillSync } from 'node:crypto';

const TOKEN_BYTES = 12;
const POOL_TOKENS = 256;
const pool = Buffer.alloc(TOKEN_BYTES * POOL_TOKENS);
let next = POOL_TOKENS;

/**
 * A fresh 96-bit random claim token as hex. Drawn from a pool refilled from the CSPRNG 256 tokens at
 * a time: one `randomBytes` call per claim was ~2% of a small completion's CPU (BENCHMARKS.md). The
 * bytes are the same CSPRNG output, each used once; the pool is overwritten on refill.
 */
export const claimToken = (): string => {
  if (next === POOL_TOKENS) {
    randomFillSync(pool);
    next = 0;
  }
  const at = next++ * TOKEN_BYTES;
  return pool.toString('hex', at, at + TOKEN_BYTES);
};
