/**
 * The demo's hand on a card's contacts: a VirtualCard that passes everything to the card inside it
 * and counts the commands the card processed, by INS. It can be armed to act right after the card
 * has processed one command with a given INS and before its answer leaves: the demo pulls the card
 * out of the reader there, so the card has committed the DEBIT but the terminal never sees the
 * answer (a tear). The card inside can be swapped while the card is out of the reader (an image
 * restored from a copy).
 *
 * Composition only: the card OS and the vpcd client are untouched; the client drives the tap as it
 * would drive the card.
 */
import type { VirtualCard } from '../../../emulator/card.js';

export interface TapHook {
  /** INS byte of the command to act after (the INS stays in the clear under SCP03). */
  ins: number;
  /** Runs after the card processed that command, before its answer is handed back. Once. */
  after: () => void;
}

export class CardTap implements VirtualCard {
  private card: VirtualCard;
  private hook: TapHook | null = null;
  private readonly processed = new Map<number, number>();

  constructor(card: VirtualCard) {
    this.card = card;
  }

  get atr(): Uint8Array {
    return this.card.atr;
  }

  powerOn(): void {
    this.card.powerOn();
  }

  powerOff(): void {
    this.card.powerOff();
  }

  reset(): void {
    this.card.reset();
  }

  async process(command: Uint8Array): Promise<Uint8Array> {
    const answer = await this.card.process(command);
    const ins = command.length >= 2 ? command[1] : -1;
    this.processed.set(ins, (this.processed.get(ins) ?? 0) + 1);
    const hook = this.hook;
    if (hook !== null && hook.ins === ins) {
      this.hook = null;
      hook.after();
    }
    return answer;
  }

  /** Acts once after the next command with `ins` (replaces an earlier arming). */
  arm(hook: TapHook): void {
    this.hook = hook;
  }

  disarm(): void {
    this.hook = null;
  }

  get armed(): boolean {
    return this.hook !== null;
  }

  /** Commands with this INS the card has processed so far. */
  count(ins: number): number {
    return this.processed.get(ins) ?? 0;
  }

  /** Puts another card (e.g. rebuilt from a restored image) behind the contacts. */
  swap(card: VirtualCard): void {
    this.card = card;
  }
}
