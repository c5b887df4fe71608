#!/usr/bin/env node
// Prints vitest's JSON report as one plain line: "N passed, N failed[, N skipped]".
// A test file that failed to load ran no test but is broken: it counts as one failure.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (e) {
  console.error(`test-summary: no readable vitest report at ${file}: ${e.message}`);
  console.log('0 passed, 1 failed');
  process.exit(0);
}
const suites = report.testResults ?? [];
const brokenFiles = suites.filter(
  (s) => s.status === 'failed' && !(s.assertionResults ?? []).some((a) => a.status === 'failed'),
).length;
const passed = report.numPassedTests ?? 0;
const failed = (report.numFailedTests ?? 0) + brokenFiles;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
