import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration suites share system daemons (pcscd, vpcd ports); run files one at a time
    // where they say so with a `// @serial` marker is not supported by vitest, so keep the
    // default pool and let each suite pick ephemeral ports.
    pool: 'forks',
  },
});
