export type { DemoUpstream } from './demo-upstream.js';
export { DEMO_MODEL, demoHeard, startDemoUpstream } from './demo-upstream.js';
