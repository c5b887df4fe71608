/**
 * Faults the demo can be told to inject (runDemo({ faults }), `hilt demo --fault NAME`), to show that
 * the day's checks catch a broken stack: with one of them the demo must fail, naming the step.
 */
import { BadInputError } from '../../util/errors.js';

export const DEMO_FAULTS = {
  'skip-negative-sync': 'the terminal does not fetch the negative-list update after the operator blocks a card',
  'drop-advice': 'one advice queued during the host outage is marked sent without reaching the host',
} as const;

export type DemoFault = keyof typeof DEMO_FAULTS;

export function parseFault(name: string): DemoFault {
  if (!Object.hasOwn(DEMO_FAULTS, name)) throw new BadInputError(`--fault: unknown fault "${name}" (known: ${Object.keys(DEMO_FAULTS).join(', ')})`);
  return name as DemoFault;
}
