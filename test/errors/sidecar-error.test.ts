import { describe, expect, it } from 'vitest';
import { SidecarError } from '../../src/errors/index.js';

describe('SidecarError', () => {
  it('renders the OpenAI error shape with a type derived from the status', () => {
    const err = new SidecarError('Chat id not found or expired', { status: 404, code: 'chat_id_not_found' });
    expect(err.toBody()).toEqual({
      error: {
        message: 'Chat id not found or expired',
        type: 'not_found',
        param: null,
        code: 'chat_id_not_found',
      },
    });
    expect(new SidecarError('x', { status: 429, code: 'c' }).type).toBe('rate_limit_error');
    expect(new SidecarError('x', { status: 503, code: 'c' }).type).toBe('service_unavailable');
  });
});
