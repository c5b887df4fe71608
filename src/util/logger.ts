/**
 * The two-level logger of hilt's long-running parts (vpcd server and client, hosts): `info` for
 * progress a user may want with --verbose, `warn` for what they should see. Lines carry no newline.
 */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

/** Says nothing: tests, benchmarks, and callers that report through their own results. */
export const SILENT_LOGGER: Logger = Object.freeze({ info: () => undefined, warn: () => undefined });

/** Drops `info`, writes each warning as one line `${prefix}: ${message}` through `write`. */
export function warningsTo(write: (line: string) => void, prefix: string): Logger {
  return { info: () => undefined, warn: (message) => write(`${prefix}: ${message}`) };
}

/** Warnings to standard error, one line each. */
export function stderrWarnings(prefix: string): Logger {
  return warningsTo((line) => process.stderr.write(`${line}\n`), prefix);
}
