/**
 * A decrypted message content → the content-parts array it encodes, or undefined when it is text.
 * NEAR's clients seal multimodal content as the JSON text of its parts array, and inference-proxy
 * (`decrypt_chat_message_fields`) restores any JSON array; here only an array of content parts
 * (objects with a string `type`, OpenAI's shape) counts, so a prompt that merely is a JSON array
 * (`[1, 2, 3]`, a list of strings) stays the user's text (docs/protocol.md, E2EE). The client half
 * seals a text that would read as parts inside one text part, so its text always arrives as text.
 */
export const contentPartsOf = (plain: string): unknown[] | undefined => {
  let value: unknown;
  try {
    value = JSON.parse(plain);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const parts = value.every(
    (part) =>
      typeof part === 'object' &&
      part !== null &&
      !Array.isArray(part) &&
      typeof (part as Record<string, unknown>).type === 'string',
  );
  return parts ? value : undefined;
};
