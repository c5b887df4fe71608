import { defineConfig } from 'vitest/config';

// HILT_TEST_REPORT=path adds vitest's JSON reporter, so CI can print a one-line count summary
// while `npm test` itself stays the same command everywhere.
const report = process.env.HILT_TEST_REPORT;

const shared = {
  testTimeout: 30_000,
  hookTimeout: 60_000,
  pool: 'forks' as const,
};

export default defineConfig({
  test: {
    reporters: report ? ['default', ['json', { outputFile: report }]] : ['default'],
    projects: [
      {
        test: { ...shared, name: 'unit', include: ['test/**/*.test.ts'], exclude: ['test/pcsc/**'] },
      },
      {
        // Every file here drives the one system pcscd and its vpcd readers (fixed ports): one file
        // at a time, so no two suites plug cards into the same reader or restart the daemon under
        // each other.
        test: { ...shared, name: 'pcsc', include: ['test/pcsc/**/*.test.ts'], poolOptions: { forks: { singleFork: true } } },
      },
    ],
  },
});
