import { readFile as nodeReadFile } from 'node:fs/promises';
import { SidecarError } from '../errors/index.js';

export interface WalletKeyInput {
  /** The environment to read `ZG_PRIVATE_KEY` from (config hands it over; nothing here reads process.env). */
  env: Readonly<Record<string, string | undefined>>;
  /** `--zg-private-key-file`: wins over the environment when given. */
  keyFile?: string;
  readFile?: (path: string) => Promise<string>;
}

const KEY = /^(?:0x)?([0-9a-fA-F]{64})$/;

const invalid = (where: string): SidecarError =>
  new SidecarError(`${where} expected a 32-byte secp256k1 private key as 64 hex characters (0x optional)`, {
    status: 400,
    code: 'invalid_wallet_key',
    param: where,
  });

/**
 * The 0G wallet key, from `--zg-private-key-file` or `ZG_PRIVATE_KEY` and from nowhere else: a key
 * on the command line is readable by every user of the machine through /proc and shell history
 * (SECURITY.md: secrets). Errors name where the key was looked for, never the key or a part of it
 * (docs/architecture.md, code habit 6). Returns `0x` + 64 lowercase hex characters.
 */
export const readWalletKey = async (input: WalletKeyInput): Promise<string> => {
  let raw: string | undefined;
  let where: string;
  if (input.keyFile !== undefined) {
    where = '--zg-private-key-file';
    try {
      raw = await (input.readFile ?? ((path) => nodeReadFile(path, 'utf8')))(input.keyFile);
    } catch {
      throw new SidecarError('--zg-private-key-file could not be read', {
        status: 400,
        code: 'invalid_wallet_key',
        param: where,
      });
    }
  } else {
    where = 'ZG_PRIVATE_KEY';
    raw = input.env['ZG_PRIVATE_KEY'];
    if (raw === undefined || raw === '') {
      throw new SidecarError('0G mode needs a wallet key: set ZG_PRIVATE_KEY or pass --zg-private-key-file', {
        status: 400,
        code: 'missing_wallet_key',
        param: where,
      });
    }
  }
  const match = KEY.exec(raw.trim());
  if (match?.[1] === undefined) throw invalid(where);
  const hex = match[1].toLowerCase();
  // Zero and values at or above the curve order are not keys (SEC 1, 3.2.1).
  const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const value = BigInt(`0x${hex}`);
  if (value === 0n || value >= n) throw invalid(where);
  return `0x${hex}`;
};
