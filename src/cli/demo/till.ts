/**
 * The terminal's counter, as the scripted day uses it: a customer presents a card, the terminal runs
 * one flow on it, the card is taken away. Amounts are printed the way a receipt prints them.
 */
import { currencyByAlpha, formatAmount, purchase, type PurchaseResult, type PurseBalance } from '../../terminal/purse/index.js';
import { PURSE_INS } from '../../terminal/purse/protocol.js';
import { DEMO_TERMINAL, type DemoCard, type World } from './world.js';

export const CURRENCY = currencyByAlpha(DEMO_TERMINAL.currency);

/** "JPY 1,250". */
export function money(minor: number): string {
  return formatAmount(minor, CURRENCY);
}

/** Presents the card, runs `flow`, takes the card away (also when the flow fails). */
export async function withCard<T>(w: World, card: DemoCard, flow: () => Promise<T>): Promise<T> {
  await w.present(card);
  try {
    return await flow();
  } finally {
    await w.takeAway(card);
  }
}

/** One purchase of `amount` on `card` (tear recovery of its pending rows first, as the flow does). */
export function pay(w: World, card: DemoCard, amount: number): Promise<PurchaseResult> {
  return withCard(w, card, () => purchase(w.terminal(), amount));
}

/** What the card says, read in the clear: balance, counter, log. */
export function look(w: World, card: DemoCard): Promise<PurseBalance> {
  return withCard(w, card, () => w.readCard());
}

/** DEBIT commands the card itself has processed so far (counted at its contacts). */
export function debitsSeen(card: DemoCard): number {
  return card.tap.count(PURSE_INS.debit);
}
