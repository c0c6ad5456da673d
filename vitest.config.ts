import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Every test must assert something: a test that cannot fail is a defect.
    expect: { requireAssertions: true },
    pool: 'forks',
    // The soak test reads live memory after a real garbage collection.
    execArgv: ['--expose-gc'],
  },
});
