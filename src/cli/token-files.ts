import { UsageError } from './usage.js';

/** The token flags that have a file form: a token on the command line is visible in `ps`. */
const TOKEN_FLAGS = ['api-key', 'auth-token'] as const;

/**
 * The options with `--api-key-file` / `--auth-token-file` read into `api-key` / `auth-token` (issue
 * 21, item 12). The file's content, less trailing whitespace, is the token; an empty or unreadable
 * file, or both forms at once, is a usage error that names the flag and never the value.
 */
export const withTokenFiles = async (
  values: Record<string, unknown>,
  read: (path: string) => Promise<Uint8Array>,
): Promise<Record<string, unknown>> => {
  const out = { ...values };
  for (const flag of TOKEN_FLAGS) {
    const path = values[`${flag}-file`];
    if (typeof path !== 'string') continue;
    if (values[flag] !== undefined) throw new UsageError(`give --${flag} or --${flag}-file, not both`);
    let text: string;
    try {
      text = new TextDecoder().decode(await read(path));
    } catch {
      throw new UsageError(`--${flag}-file: cannot read the file`);
    }
    const token = text.replace(/\s+$/, '');
    if (token === '' || /[\r\n\0]/.test(token))
      throw new UsageError(`--${flag}-file: expected one token on one line`);
    out[flag] = token;
  }
  return out;
};

/**
 * The warning for a token given as an argument: other local users read it in `ps` and
 * /proc/<pid>/cmdline. The environment and the file forms are not listed there.
 */
export const argvTokenWarnings = (argv: readonly string[]): string[] =>
  TOKEN_FLAGS.filter((flag) => argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`))).map(
    (flag) =>
      `teeml-sidecar gateway: warning: --${flag} on the command line is visible to other users (ps); use --${flag}-file or the environment\n`,
  );
