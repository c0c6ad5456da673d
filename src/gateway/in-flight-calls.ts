/**
 * One provider call's abort. Plain callbacks rather than an AbortController per call: an EventTarget,
 * its listeners and `http.request`'s `signal` option cost the gateway ~5% of its CPU per answer
 * (issue 23). A web `AbortSignal` is made only where a fetch needs one (`signal`).
 */
export class CallHandle {
  aborted = false;
  reason: unknown;
  private listeners: Array<(reason: unknown) => void> | undefined;
  private controller: AbortController | undefined;

  /** Aborts the call once: every listener runs, and the signal (if one was made) aborts. */
  abort(reason: unknown = abortError()): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    for (const listener of listeners ?? []) listener(reason);
    this.controller?.abort(reason);
  }

  /** Runs `listener` when the call aborts (at once if it already did); returns how to stop listening. */
  onAbort(listener: (reason: unknown) => void): () => void {
    if (this.aborted) {
      listener(this.reason);
      return () => undefined;
    }
    this.listeners ??= [];
    this.listeners.push(listener);
    return () => {
      const at = this.listeners?.indexOf(listener) ?? -1;
      if (at !== -1) this.listeners?.splice(at, 1);
    };
  }

  /** A web AbortSignal that follows this call (for a fetch), made on first use. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }
}

/** What an aborted fetch rejects with (the same name, so callers that check it see no difference). */
const abortError = (): Error => new DOMException('This operation was aborted', 'AbortError');

/**
 * The provider calls in flight, each with its handle: a user who hangs up (the listener's close, the
 * client's request signal), or a stream's reader that cancels, aborts its call, and closing the
 * engine aborts them all.
 */
export class InFlightCalls {
  private readonly calls = new Set<CallHandle>();
  private closed = false;

  /** A handle for one call, born aborted once all were aborted: a call whose request body was still arriving at close is not sent. */
  start(): CallHandle {
    const call = new CallHandle();
    this.calls.add(call);
    if (this.closed) call.abort();
    return call;
  }

  end(call: CallHandle): void {
    this.calls.delete(call);
  }

  abortAll(): void {
    this.closed = true;
    for (const c of this.calls) c.abort();
  }
}
