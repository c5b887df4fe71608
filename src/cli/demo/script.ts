/**
 * The recorder of the scripted day: each step runs, says what happened (measured), what was
 * expected, and whether the two agree. A step that throws where it should not is a failed step with
 * the error as what happened; the day goes on, so one broken scenario does not hide the others.
 */
import { isHiltError } from '../../util/errors.js';

export interface DayStep {
  /** Which part of the day: "open", "sales", "blocked card", ... */
  section: string;
  /** Short stable name, e.g. "blocked card refused". */
  name: string;
  /** What the run showed, measured. */
  happened: string;
  /** What a correct stack does here. */
  expected: string;
  ok: boolean;
  ms: number;
}

export interface Outcome {
  ok: boolean;
  happened: string;
}

export function errorText(e: unknown): string {
  if (isHiltError(e)) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

export class Script {
  readonly steps: DayStep[] = [];
  private section = '';

  /** Steps from here on belong to `name`. */
  part(name: string): void {
    this.section = name;
  }

  /** Runs one step; returns its outcome (a throw becomes a failed outcome). */
  async step(name: string, expected: string, body: () => Promise<Outcome>): Promise<Outcome> {
    const t0 = process.hrtime.bigint();
    let outcome: Outcome;
    try {
      outcome = await body();
    } catch (e) {
      outcome = { ok: false, happened: `unexpected error: ${errorText(e)}` };
    }
    this.steps.push({ section: this.section, name, happened: outcome.happened, expected, ok: outcome.ok, ms: Number((process.hrtime.bigint() - t0) / 1_000_000n) });
    return outcome;
  }

  get failures(): DayStep[] {
    return this.steps.filter((s) => !s.ok);
  }
}

/** An outcome from a list of checks: ok when every check holds; the failed ones are named. */
export function verdict(happened: string, checks: Record<string, boolean>): Outcome {
  const failed = Object.entries(checks)
    .filter(([, v]) => !v)
    .map(([k]) => k);
  return { ok: failed.length === 0, happened: failed.length === 0 ? happened : `${happened} — NOT: ${failed.join('; ')}` };
}

/** Awaits `p` and returns its error, or null when it resolved. */
export async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
    return null;
  } catch (e) {
    return e;
  }
}
