import type { CallHandle } from './in-flight-calls.js';

/** Writes a stream's events to the user: one event at a time with backpressure, then the end with its verdict. */
export interface StreamSink {
  write(bytes: Uint8Array | string): Promise<void>;
  /** The last bytes (the held `[DONE]` or an `error` event) and the verdict for the trailer. */
  end(verification: string, last: Uint8Array | string): void;
  /** True once the user's reader cancelled: nothing more reaches them. */
  readonly gone: boolean;
}

/** Bytes queued for the user before a write waits for them to read (WHATWG Streams: highWaterMark). */
const HIGH_WATER_BYTES = 64 * 1024;

/**
 * A stream answer's body as a web ReadableStream, and the sink the relay writes it through. Pull
 * based (WHATWG Streams §4.2.4): a write waits while the queue is over HIGH_WATER_BYTES, so a slow
 * reader slows the read from the provider instead of filling memory. A reader that cancels calls
 * `onCancel` (the provider call is aborted). `verdict` settles with the `X-TeeML-Verification`
 * value when the stream ends: the HTTP listener sends it as the trailer; in-process, the held
 * `[DONE]` or the `error` event says the same.
 */
export const streamBody = (
  call: CallHandle,
  idleMs: number,
): { body: ReadableStream<Uint8Array>; sink: StreamSink; verdict: Promise<string> } => {
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  let wake: (() => void) | undefined;
  let gone = false;
  let settle: (verification: string) => void = () => undefined;
  const verdict = new Promise<string>((resolve) => {
    settle = resolve;
  });
  const resume = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const body = new ReadableStream<Uint8Array>(
    {
      start: (c) => {
        controller = c;
      },
      pull: resume,
      cancel: () => {
        gone = true;
        resume();
        settle('cancelled');
        call.abort();
      },
    },
    { highWaterMark: HIGH_WATER_BYTES, size: (chunk) => chunk.byteLength },
  );
  call.onAbort((reason) => {
    if (gone) return;
    gone = true;
    controller?.error(reason);
    resume();
    settle('cancelled');
  });
  const encoder = new TextEncoder();
  const bytesOf = (b: Uint8Array | string): Uint8Array => (typeof b === 'string' ? encoder.encode(b) : b);
  const sink: StreamSink = {
    write: async (bytes) => {
      if (gone || controller === undefined) return;
      controller.enqueue(bytesOf(bytes));
      if ((controller.desiredSize ?? 0) > 0 || gone) return;
      const timer = setTimeout(() => {
        if (gone) return;
        gone = true;
        controller?.error(new Error(`the reader took nothing for ${idleMs / 1000} s`));
        resume();
        settle('cancelled');
        call.abort();
      }, idleMs);
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      clearTimeout(timer);
    },
    end: (verification, last) => {
      if (!gone && controller !== undefined) {
        controller.enqueue(bytesOf(last));
        controller.close();
      }
      settle(verification);
    },
    get gone() {
      return gone;
    },
  };
  return { body, sink, verdict };
};
