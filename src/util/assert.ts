/** Tiny input assertions whose messages say what was received. */
import { BadInputError } from './errors.js';

export function assertBytes(value: unknown, name: string, lengths?: readonly number[]): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new BadInputError(`${name}: expected Uint8Array, got ${value === null ? 'null' : typeof value}`);
  }
  if (lengths && !lengths.includes(value.length)) {
    throw new BadInputError(`${name}: expected ${lengths.join(', ').replace(/, (\d+)$/, ' or $1')} bytes, got ${value.length}`);
  }
}

export function assertInt(value: unknown, name: string, min: number, max: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new BadInputError(`${name}: expected an integer from ${min} to ${max}, got ${String(value)}`);
  }
}
