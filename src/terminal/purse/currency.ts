/**
 * Currencies as the purse terminal reads and writes them (the table is src/util/iso4217.ts): the
 * alphabetic code the journal and people use, the numeric code the card carries (BCD,
 * applets-spec/emoney-purse.md "Field codings"), and the number of minor-unit digits that decides how
 * an amount is written (JPY 1,250; EUR 12.50; KWD 1.250).
 *
 * Money stays an integer count of minor units everywhere; these functions only read and write text.
 */
import { BadInputError } from '../../util/errors.js';
import { CURRENCIES, findCurrency, findCurrencyByNumeric, type CurrencyInfo } from '../../util/iso4217.js';

export { CURRENCIES, type CurrencyInfo } from '../../util/iso4217.js';

/** The currency of an alphabetic code (any case); BadInputError naming the known ones otherwise. */
export function currencyByAlpha(code: string): CurrencyInfo {
  const wanted = typeof code === 'string' ? code.trim().toUpperCase() : '';
  const c = findCurrency(wanted);
  if (c === undefined) {
    throw new BadInputError(`currency: expected one of ${CURRENCIES.map((x) => x.alpha).join(', ')}, got ${typeof code === 'string' ? `"${code}"` : typeof code}`);
  }
  return c;
}

/** The currency of a numeric code, or undefined when the table does not have it. */
export function currencyByNumeric(numeric: number): CurrencyInfo | undefined {
  return findCurrencyByNumeric(numeric);
}

/** "392" for people when the table lacks a numeric code; the alphabetic code otherwise. */
export function currencyLabel(numeric: number): string {
  return currencyByNumeric(numeric)?.alpha ?? String(numeric).padStart(3, '0');
}

/** An amount of minor units as people read it: "JPY 1,250", "EUR 1,234.50" (negative: "EUR -3.00"). */
export function formatAmount(minor: number, currency: CurrencyInfo | number): string {
  if (!Number.isSafeInteger(minor)) throw new BadInputError(`amount: expected an integer count of minor units, got ${String(minor)}`);
  const info = typeof currency === 'number' ? currencyByNumeric(currency) : currency;
  const label = typeof currency === 'number' ? currencyLabel(currency) : currency.alpha;
  const exponent = info?.exponent ?? 0;
  const sign = minor < 0 ? '-' : '';
  const digits = String(Math.abs(minor)).padStart(exponent + 1, '0');
  const whole = digits.slice(0, digits.length - exponent).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const fraction = exponent > 0 ? `.${digits.slice(digits.length - exponent)}` : '';
  return `${label} ${sign}${whole}${fraction}`;
}

/** Longest amount text accepted, so that no number beyond Number.MAX_SAFE_INTEGER is built. */
const MAX_AMOUNT_DIGITS = 15;

/**
 * Minor units from an amount written in the currency's units: "1250" JPY = 1250; "12.50" or "12.5"
 * EUR = 1250; "12" EUR = 1200. More decimals than the currency has, or anything but digits with
 * one optional point and an optional leading minus, is a BadInputError. The value itself is not
 * range-checked here (0 and negatives come back as they are: the terminal policy refuses them).
 */
export function parseAmount(text: string, currency: CurrencyInfo): number {
  const t = typeof text === 'string' ? text.trim() : '';
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(t);
  const example = currency.exponent === 0 ? '1250' : `12.${'5'.padEnd(currency.exponent, '0')}`;
  if (!m) throw new BadInputError(`amount: expected a number of ${currency.alpha} such as ${example}, got "${String(text)}"`);
  const fraction = m[3] ?? '';
  if (fraction.length > currency.exponent) {
    throw new BadInputError(`amount: ${currency.alpha} has ${currency.exponent} decimal place(s), got "${t}"`);
  }
  const digits = (m[2] + fraction.padEnd(currency.exponent, '0')).replace(/^0+(?=\d)/, '');
  if (digits.length > MAX_AMOUNT_DIGITS) throw new BadInputError(`amount: "${t}" is too large`);
  const value = Number(digits);
  return m[1] === '-' ? -value : value;
}
