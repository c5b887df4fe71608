/**
 * The ISO 4217 currencies hilt knows: the alphabetic code people, the journal and the hosts' admin
 * API use, the numeric code cards and ISO 8583 field 49 carry, and the number of minor-unit digits.
 * One table for every layer (the terminal's amounts, the host link's field 49), so a currency the
 * terminal accepts is one its uplink can send.
 */
export interface CurrencyInfo {
  /** ISO 4217 alphabetic code, upper case. */
  readonly alpha: string;
  /** ISO 4217 numeric code, 1..999. */
  readonly numeric: number;
  /** Digits after the decimal point (ISO 4217 "minor unit"). */
  readonly exponent: number;
}

/** The table: one line per currency. */
export const CURRENCIES: readonly CurrencyInfo[] = Object.freeze(
  [
    { alpha: 'JPY', numeric: 392, exponent: 0 },
    { alpha: 'KRW', numeric: 410, exponent: 0 },
    { alpha: 'CLP', numeric: 152, exponent: 0 },
    { alpha: 'ISK', numeric: 352, exponent: 0 },
    { alpha: 'EUR', numeric: 978, exponent: 2 },
    { alpha: 'USD', numeric: 840, exponent: 2 },
    { alpha: 'GBP', numeric: 826, exponent: 2 },
    { alpha: 'CHF', numeric: 756, exponent: 2 },
    { alpha: 'CNY', numeric: 156, exponent: 2 },
    { alpha: 'HKD', numeric: 344, exponent: 2 },
    { alpha: 'SGD', numeric: 702, exponent: 2 },
    { alpha: 'AUD', numeric: 36, exponent: 2 },
    { alpha: 'CAD', numeric: 124, exponent: 2 },
    { alpha: 'SEK', numeric: 752, exponent: 2 },
    { alpha: 'NOK', numeric: 578, exponent: 2 },
    { alpha: 'DKK', numeric: 208, exponent: 2 },
    { alpha: 'INR', numeric: 356, exponent: 2 },
    { alpha: 'KWD', numeric: 414, exponent: 3 },
    { alpha: 'BHD', numeric: 48, exponent: 3 },
  ].map((c) => Object.freeze(c)),
);

/** The currency of an upper-case alphabetic code, or undefined. */
export function findCurrency(alpha: string): CurrencyInfo | undefined {
  return CURRENCIES.find((x) => x.alpha === alpha);
}

/** The currency of a numeric code, or undefined. */
export function findCurrencyByNumeric(numeric: number): CurrencyInfo | undefined {
  return CURRENCIES.find((x) => x.numeric === numeric);
}
