/** A command line the CLI cannot run (a bad flag or value): the command prints it and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A flag's value that must be an http(s) URL; returned as given. */
export const httpUrl = (flag: string, value: string): string => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${flag}: not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`${flag}: expected http(s)`);
  return value;
};
