import type { CheckResult } from './types.js';

/** Collects check results in the order they ran; each check is recorded exactly once. */
export class CheckList {
  readonly results: CheckResult[] = [];

  /** `onAdd` sees each result as it is recorded (verifyProvider's `onCheck`). */
  constructor(private readonly onAdd?: (result: CheckResult) => void) {}

  pass(id: string, title: string, detail: string, simulated = false): void {
    this.add({ id, title, status: 'pass', detail, ...(simulated ? { simulated: true as const } : {}) });
  }

  fail(id: string, title: string, detail: string): void {
    this.add({ id, title, status: 'fail', detail });
  }

  skip(id: string, title: string, detail: string): void {
    this.add({ id, title, status: 'skip', detail });
  }

  add(result: CheckResult): void {
    if (this.results.some((r) => r.id === result.id)) throw new Error(`check "${result.id}" recorded twice`);
    this.results.push(result);
    this.onAdd?.(result);
  }

  get ok(): boolean {
    return this.results.length > 0 && this.results.every((r) => r.status !== 'fail');
  }
}
