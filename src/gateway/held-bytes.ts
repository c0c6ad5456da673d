import { SidecarError } from '../errors/index.js';

/**
 * The answer bytes the gateway holds across all requests at once (issue 21 item 11). Every answer
 * is held whole until its signature verified (its hash covers every byte), so without a shared
 * bound eight concurrent 60 MB answers took the gateway to 786 MB. Each exchange takes from the
 * budget as its bytes arrive and gives everything back when it ends; an exchange that would pass
 * the bound is refused with 429 `gateway_busy` (the user may retry when others finished).
 */
export class HeldBytes {
  private held = 0;

  constructor(readonly limit: number) {}

  /** Bytes held now, across all exchanges. */
  get current(): number {
    return this.held;
  }

  /** One exchange's share: `take` as bytes arrive, `release` once when the exchange ends. */
  share(): { take(n: number): void; release(): void } {
    let mine = 0;
    return {
      take: (n) => {
        if (this.held + n > this.limit) throw busy(this.limit);
        this.held += n;
        mine += n;
      },
      release: () => {
        this.held -= mine;
        mine = 0;
      },
    };
  }
}

/** 429 in the OpenAI shape: the gateway holds as many answer bytes as it was allowed. */
export const busy = (limit: number): SidecarError =>
  new SidecarError(
    `the gateway holds ${limit} bytes of unverified answers already (--max-held-bytes); retry when other answers finished`,
    { status: 429, code: 'gateway_busy', type: 'rate_limit_error' },
  );
