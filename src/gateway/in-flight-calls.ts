import type { ServerResponse } from 'node:http';

/**
 * The provider calls in flight, each with its abort controller: a user who hangs up aborts its call,
 * and closing the gateway aborts them all.
 */
export class InFlightCalls {
  private readonly controllers = new Set<AbortController>();

  /** A controller for the call answering `res`, aborted when the user leaves before the answer ends. */
  start(res: ServerResponse): AbortController {
    const controller = new AbortController();
    this.controllers.add(controller);
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    return controller;
  }

  end(controller: AbortController): void {
    this.controllers.delete(controller);
  }

  abortAll(): void {
    for (const c of this.controllers) c.abort();
  }
}
