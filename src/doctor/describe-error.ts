/**
 * One line for an error the doctor shows an operator: its message and the system error code of its
 * cause chain (ECONNREFUSED, ENOENT, ...), which is what an operator acts on. SidecarError messages
 * never carry secrets (errors/sidecar-error.ts); URLs that reach a message have their credentials
 * removed here in case a library printed one.
 */
export const describeError = (error: unknown): string => {
  if (!(error instanceof Error)) return 'unknown error';
  let message = error.message.split('\n')[0] ?? '';
  const code = errorCode(error);
  if (code !== undefined && !message.includes(code)) message = `${message} (${code})`;
  // fetch says only "fetch failed"; the reason is in its cause (e.g. "bad port").
  const cause = error.cause;
  if (
    code === undefined &&
    cause instanceof Error &&
    cause.message !== '' &&
    !message.includes(cause.message)
  ) {
    message = `${message} (${cause.message.split('\n')[0]})`;
  }
  return redactUrls(message || error.name);
};

/** The first `code` (errno string) along an error's cause chain. */
export const errorCode = (error: unknown): string | undefined => {
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (typeof e === 'object' && 'code' in e && typeof e.code === 'string' && /^E[A-Z0-9_]+$/.test(e.code)) {
      return e.code;
    }
    e = typeof e === 'object' && 'cause' in e ? e.cause : undefined;
  }
  return undefined;
};

/** `scheme://user:password@host` → `scheme://host`, wherever it appears. */
export const redactUrls = (text: string): string =>
  text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi, '$1');

/** A URL as the doctor prints it: no credentials, no query (it may hold a key). */
export const showUrl = (url: string): string => {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return 'an unparseable URL';
  }
};
