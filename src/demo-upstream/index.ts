export type { DemoUpstream } from './demo-upstream.js';
export { DEMO_MODEL, startDemoUpstream } from './demo-upstream.js';
