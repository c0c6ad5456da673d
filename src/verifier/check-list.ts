import type { CheckResult } from './types.js';

/** Collects check results in the order they ran; each check is recorded exactly once. */
export class CheckList {
  readonly results: CheckResult[] = [];

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
  }

  /** Runs a check body; an unexpected throw fails the check (fail closed) with the error's message. */
  async guard(id: string, title: string, body: () => Promise<void> | void): Promise<void> {
    try {
      await body();
    } catch (error) {
      if (!this.results.some((r) => r.id === id)) {
        this.fail(
          id,
          title,
          `could not be checked: ${error instanceof Error ? error.message : 'unknown error'}`,
        );
      }
    }
  }

  get ok(): boolean {
    return this.results.length > 0 && this.results.every((r) => r.status !== 'fail');
  }
}
