/**
 * The provider calls in flight, each with its abort controller: a user who hangs up (the request's
 * signal aborts, or a stream's reader cancels) aborts its call, and closing the engine aborts them all.
 */
export class InFlightCalls {
  private readonly controllers = new Set<AbortController>();
  private closed = false;

  /**
   * A controller for one call, aborted when `signal` (the user's request) aborts, and born aborted
   * once all were aborted: a call whose request body was still arriving at close is not sent.
   */
  start(signal?: AbortSignal): AbortController {
    const controller = new AbortController();
    this.controllers.add(controller);
    if (signal?.aborted || this.closed) controller.abort();
    else signal?.addEventListener('abort', () => controller.abort(), { once: true });
    return controller;
  }

  end(controller: AbortController): void {
    this.controllers.delete(controller);
  }

  abortAll(): void {
    this.closed = true;
    for (const c of this.controllers) c.abort();
  }
}
