/**
 * A CardChannel straight onto an emulated card, no socket: the fastest path, for unit tests and
 * for the in-process figure of the latency benchmark. Removal is simulated like a reader would see
 * it: transmits reject with CardRemovedError until the card is inserted again (and powered).
 */
import type { CardChannel } from '../src/reader/channel.js';
import { CardRemovedError, ChannelClosedError } from '../src/util/errors.js';
import type { VirtualCard } from './card.js';

export class InProcessChannel implements CardChannel {
  private present = true;
  private closed = false;

  constructor(private readonly card: VirtualCard) {}

  async transmit(command: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new ChannelClosedError();
    if (!this.present) throw new CardRemovedError('card removed from the in-process reader');
    return this.card.process(command);
  }

  async reset(cold = false): Promise<Uint8Array> {
    if (this.closed) throw new ChannelClosedError();
    if (!this.present) throw new CardRemovedError('card removed from the in-process reader');
    if (cold) {
      this.card.powerOff();
      this.card.powerOn();
    } else {
      this.card.reset();
    }
    return this.card.atr;
  }

  removeCard(): void {
    this.present = false;
    this.card.powerOff();
  }

  insertCard(): void {
    this.present = true;
    this.card.powerOn();
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
