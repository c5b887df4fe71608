import { HiltError } from '../../src/util/errors.js';

export type StoreErrorReason =
  | 'IN_PROGRESS'
  | 'NOT_IN_PROGRESS'
  | 'CORRUPT'
  | 'ACCESS'
  | 'POWER_LOST'
  | 'FULL'; // the image would exceed its capacity (a card answers 6A84 "not enough memory")

/** A store misuse or failure. `reason` tells which; the HiltError code is STORE_CORRUPT for CORRUPT. */
export class StoreError extends HiltError {
  readonly reason: StoreErrorReason;
  constructor(reason: StoreErrorReason, message: string) {
    super(reason === 'CORRUPT' ? 'STORE_CORRUPT' : 'PROTOCOL', message);
    this.reason = reason;
  }
}
