/**
 * Tool call ids are sent in clear by NEAR's protocol (they are not among the sealed fields), and a
 * tool chooses them: they could carry anything. Their only job inside one request is to pair an
 * assistant's `tool_calls[].id` with the `tool` message's `tool_call_id` that answers it, so under
 * E2EE the gateway replaces each distinct id with a neutral one (`call_0`, `call_1`, ...),
 * consistently within the request. The model sees the same pairing; the ids the user chose never
 * leave. The signature covers the bytes actually sent (docs/protocol.md, E2EE).
 */
export const neutralToolIds = (request: Record<string, unknown>): void => {
  const messages = request['messages'];
  if (!Array.isArray(messages)) return;
  const ids = new Map<unknown, string>();
  const neutral = (id: unknown): string => {
    let mapped = ids.get(id);
    if (mapped === undefined) {
      mapped = `call_${ids.size}`;
      ids.set(id, mapped);
    }
    return mapped;
  };
  for (const message of messages) {
    if (typeof message !== 'object' || message === null) continue;
    const m = message as Record<string, unknown>;
    if (typeof m['tool_call_id'] === 'string') m['tool_call_id'] = neutral(m['tool_call_id']);
    if (!Array.isArray(m['tool_calls'])) continue;
    for (const call of m['tool_calls']) {
      if (typeof call === 'object' && call !== null && typeof (call as { id?: unknown }).id === 'string')
        (call as { id: string }).id = neutral((call as { id: string }).id);
    }
  }
};
