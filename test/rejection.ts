import { expect } from 'vitest';
import { SidecarError } from '../src/errors/index.js';

/** Awaits a promise that must reject with a SidecarError, and returns that error for more checks. */
export const rejection = async (promise: Promise<unknown>): Promise<SidecarError> => {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(SidecarError);
    return error as SidecarError;
  }
  throw new Error('expected a rejection');
};
