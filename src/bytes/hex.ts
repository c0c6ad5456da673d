import { SidecarError } from '../errors/index.js';

const HEX = /^[0-9a-fA-F]*$/;

/** Lowercase hex of bytes. */
export const toHex = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

/**
 * Strict hex decoding at a boundary (docs/architecture.md, code habit 6): even length, hex digits only, optional `0x` only
 * when `allowPrefix`, and an exact byte length when given. The message names the field and the
 * lengths, never the value.
 */
export const parseHex = (
  field: string,
  value: string,
  options: { bytes?: number; allowPrefix?: boolean; status?: number; code?: string } = {},
): Uint8Array => {
  const status = options.status ?? 400;
  const code = options.code ?? 'invalid_hex';
  let body = value;
  if (options.allowPrefix && (body.startsWith('0x') || body.startsWith('0X'))) body = body.slice(2);
  if (!HEX.test(body)) {
    const at = body.search(/[^0-9a-fA-F]/);
    const prefix = at === 1 && (body[1] === 'x' || body[1] === 'X') && !options.allowPrefix;
    throw new SidecarError(
      prefix
        ? `"${field}" expected plain hex without a 0x prefix`
        : `"${field}" expected hex digits only, got a non-hex character at position ${at}`,
      { status, code, param: field },
    );
  }
  if (body.length % 2 !== 0) {
    throw new SidecarError(`"${field}" expected an even number of hex digits, got ${body.length}`, {
      status,
      code,
      param: field,
    });
  }
  if (options.bytes !== undefined && body.length !== options.bytes * 2) {
    throw new SidecarError(
      `"${field}" expected ${options.bytes} bytes (${options.bytes * 2} hex characters), got length=${body.length}`,
      { status, code, param: field },
    );
  }
  return new Uint8Array(Buffer.from(body, 'hex'));
};

/** Checks a byte array's exact length at a boundary. */
export const assertBytes = (field: string, value: Uint8Array, length: number): Uint8Array => {
  if (!(value instanceof Uint8Array)) throw new TypeError(`"${field}" expected Uint8Array`);
  if (value.length !== length)
    throw new TypeError(`"${field}" expected Uint8Array of length ${length}, got length=${value.length}`);
  return value;
};

export const equalBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length &&
  Buffer.compare(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength),
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  ) === 0;
