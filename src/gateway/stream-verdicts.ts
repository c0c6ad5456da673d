/**
 * The verdict of each stream answer the engine returned, by its Response: settles with the
 * `X-TeeML-Verification` value when the stream ends. The HTTP listener sends it as the trailer
 * (docs/protocol.md); a Response has no trailers, so in-process the stream's own end says it.
 */
export const streamVerdicts = new WeakMap<Response, Promise<string>>();
