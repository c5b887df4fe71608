import { defineConfig } from 'vitest/config';

// HILT_TEST_REPORT=path adds vitest's JSON reporter, so CI can print a one-line count summary
// while `npm test` itself stays the same command everywhere.
const report = process.env.HILT_TEST_REPORT;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: report ? ['default', ['json', { outputFile: report }]] : ['default'],
  },
});
