import { describe, expect, it } from 'vitest';
import * as verifier from '../../src/verifier/index.js';

describe('src/verifier/index.ts', () => {
  it('apiRoot adds /v1 once', () => {
    expect(verifier.apiRoot('http://h:1')).toBe('http://h:1/v1');
    expect(verifier.apiRoot('http://h:1/v1/')).toBe('http://h:1/v1');
  });

  it('responseIdOf: ZG-Res-Key first, then body id, then the first SSE chunk with an id', () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(verifier.responseIdOf(new Headers({ 'zg-res-key': 'chatcmpl-h' }), enc('{"id":"x"}'), false)).toBe(
      'chatcmpl-h',
    );
    expect(verifier.responseIdOf(new Headers(), enc('{"id":"chatcmpl-b"}'), false)).toBe('chatcmpl-b');
    const sse = 'data: {"choices":[]}\n\ndata: {"id":"chatcmpl-s","choices":[]}\n\ndata: [DONE]\n\n';
    expect(verifier.responseIdOf(new Headers(), enc(sse), true)).toBe('chatcmpl-s');
    expect(verifier.responseIdOf(new Headers(), enc('data: [DONE]\n\n'), true)).toBeUndefined();
  });
});
