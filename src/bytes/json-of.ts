const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The JSON value of exact bytes (strict UTF-8), or undefined when they are not that. */
export const jsonOf = (body: Uint8Array): unknown => {
  try {
    return JSON.parse(strictUtf8.decode(body));
  } catch {
    return undefined;
  }
};
