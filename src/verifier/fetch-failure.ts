/**
 * Why a request to the provider failed, in words a user acts on: the address tried and the system
 * error (fetch itself says only "fetch failed"; the errno and address are in its cause chain). A URL
 * reaches this text only as scheme://host:port, never with credentials or a query.
 */
export const fetchFailure = (error: unknown, url: string): string => {
  let where = 'the provider';
  try {
    const u = new URL(url);
    where = `${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
  } catch {
    // an unparseable URL: name no address
  }
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^(E[A-Z0-9_]+|UND_ERR_[A-Z_]+)$/.test(code)) {
      const meaning = MEANINGS[code];
      return `cannot reach ${where}: ${code}${meaning === undefined ? '' : ` (${meaning})`}`;
    }
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer from ${where}: ${e.message}`;
    e = e.cause;
  }
  // No errno: the innermost cause says most ("fetch failed" → "bad port").
  let inner: unknown = error;
  while (inner instanceof Error && inner.cause instanceof Error) inner = inner.cause;
  const message = inner instanceof Error ? inner.message.split('\n')[0] : undefined;
  return `request to ${where} failed: ${message || 'unknown error'}`;
};

const MEANINGS: Record<string, string> = {
  ECONNREFUSED: 'nothing listens on that port',
  ENOTFOUND: 'no such host name',
  EAI_AGAIN: 'the host name could not be resolved now',
  ECONNRESET: 'the connection was reset',
  ETIMEDOUT: 'the connection timed out',
  EHOSTUNREACH: 'no route to the host',
  ENETUNREACH: 'the network is unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'the connection timed out',
};

/** What came back instead of a report, for "not a teeml-sidecar": status, type and its first bytes. */
export const notASidecar = (status: number, contentType: string | null, body: Uint8Array): string => {
  const text = new TextDecoder()
    .decode(body.subarray(0, 80))
    .replace(/[^\x20-\x7e]+/g, ' ')
    .trim();
  return `not a teeml-sidecar: GET /v1/attestation/report answered HTTP ${status}${
    contentType === null ? '' : ` ${contentType.split(';')[0]}`
  }${text === '' ? ', empty' : `: "${text}${body.length > 80 ? '…' : ''}"`}`;
};
