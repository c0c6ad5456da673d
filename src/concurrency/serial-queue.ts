/**
 * One-at-a-time execution, in call order. Quote devices and NVML must not be driven concurrently
 * (configfs-tsm answers EBUSY, libtdx_attest and NVML are not re-entrant; docs/platforms.md). A task's
 * slot is released only when the task itself settles, even if its caller gave up on it after a
 * deadline: a native call that is still running keeps the next one waiting.
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** Settles when everything queued so far has finished. */
  idle(): Promise<void> {
    return this.#tail.then(() => undefined);
  }
}
