import { describe, expect, it } from 'vitest';
import { nullBody } from '../../src/bytes/index.js';

describe('nullBody', () => {
  it('is the Fetch standard null-body statuses and HEAD: exactly where new Response(body) throws', () => {
    for (let status = 200; status <= 599; status += 1) {
      let throws = false;
      try {
        new Response('x', { status });
      } catch {
        throws = true;
      }
      expect(nullBody(status)).toBe(throws);
    }
    expect(nullBody(205)).toBe(true);
    expect(nullBody(200, 'HEAD')).toBe(true);
    expect(nullBody(200, 'GET')).toBe(false);
  });
});
