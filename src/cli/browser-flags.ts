import { UsageError } from './usage.js';

/** Entries of a repeatable flag; the environment form may also separate them by commas. */
const entries = (value: unknown): string[] =>
  ((value as string[] | undefined) ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');

const HOST =
  /^([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(:\d{1,5})?$/i;

/**
 * `--allowed-host` and `--allow-origin` (issue 21, item 6), checked: a host is a DNS name or a
 * bracketed IPv6 literal with an optional port; an origin is `http(s)://host[:port]` exactly as a
 * browser sends it in `Origin` (no path, no trailing slash).
 */
export const browserFlagsOf = (
  values: Record<string, unknown>,
): { allowedHosts?: string[]; allowOrigins?: string[] } => {
  const hosts = entries(values['allowed-host']);
  for (const h of hosts)
    if (!HOST.test(h)) throw new UsageError('--allowed-host: expected a host name, optionally with :port');
  const origins = entries(values['allow-origin']);
  for (const o of origins) {
    let url: URL | undefined;
    try {
      url = new URL(o);
    } catch {
      url = undefined;
    }
    if (
      url === undefined ||
      (url.protocol !== 'http:' && url.protocol !== 'https:') ||
      url.origin !== o.toLowerCase()
    )
      throw new UsageError('--allow-origin: expected an origin like http://localhost:5173 (no path)');
  }
  return {
    ...(hosts.length === 0 ? {} : { allowedHosts: hosts }),
    ...(origins.length === 0 ? {} : { allowOrigins: origins }),
  };
};
