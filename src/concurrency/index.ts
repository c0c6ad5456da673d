export { Budget } from './budget.js';
export { OldestFirst } from './oldest-first.js';
export type { RateVerdict, RateWindowOptions } from './rate-window.js';
export { RateWindow } from './rate-window.js';
export type { DeadlineOptions } from './run-with-deadline.js';
export { runWithDeadline } from './run-with-deadline.js';
export { SerialQueue } from './serial-queue.js';
