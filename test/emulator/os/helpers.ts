/** Shared pieces of the card OS tests: a card builder, an APDU exchange in hex, small test applets. */
import { expect } from 'vitest';
import { CardOs, type AppletEntry, type CardOsOptions } from '../../../emulator/os/card-os.js';
import { SwError, type Applet, type AppletContext } from '../../../emulator/os/applet.js';
import { MemoryStore } from '../../../emulator/store/memory.js';
import { ResponseApdu } from '../../../src/apdu/response.js';
import type { CommandApdu } from '../../../src/apdu/command.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';

export const ATR = fromHex('3B 80 80 01 01');
export const SERIAL = fromHex('01 02 03 04 05 06 07 08');

export function makeCard(applets: AppletEntry[], extra: Partial<CardOsOptions> = {}): { card: CardOs; store: MemoryStore } {
  const store = (extra.store as MemoryStore | undefined) ?? new MemoryStore();
  const card = new CardOs({ atr: ATR, serial: SERIAL, applets, ...extra, store });
  return { card, store };
}

/** Sends a C-APDU written in hex; resolves to the R-APDU as upper-case hex without spaces. */
export async function tx(card: CardOs, apduHex: string): Promise<string> {
  return toHex(await card.process(fromHex(apduHex))).toUpperCase();
}

/** Upper-case hex without spaces, for comparing with tx(). */
export function h(text: string): string {
  return text.replace(/\s+/g, '').toUpperCase();
}

export interface CallLog {
  calls: string[];
}

/**
 * A small applet for OS tests. INS 01 answers its name (ASCII); INS 02 answers P1P2 bytes of
 * 0xA5; INS 03 throws a plain Error; INS 04 answers data + SW 6283 (a warning with data); INS 05
 * returns its channel number; INS 06 echoes the data. Records select/deselect calls as "select:<name>:<ch>".
 */
export function testApplet(name: string, log: CallLog, options: { refuseSelect?: boolean; multi?: boolean; chaining?: Applet['chaining'] } = {}): Applet {
  return {
    multiSelectable: options.multi ?? true,
    chaining: options.chaining,
    select(_ctx: AppletContext, channel: number) {
      log.calls.push(`select:${name}:${channel}`);
      return options.refuseSelect ? false : true;
    },
    deselect(_ctx: AppletContext, channel: number) {
      log.calls.push(`deselect:${name}:${channel}`);
    },
    process(_ctx: AppletContext, apdu: CommandApdu, channel: number): ResponseApdu {
      log.calls.push(`process:${name}:${channel}:${apdu.toString()}`);
      switch (apdu.ins) {
        case 0x01:
          return new ResponseApdu(new TextEncoder().encode(name), 0x9000);
        case 0x02:
          return new ResponseApdu(new Uint8Array((apdu.p1 << 8) | apdu.p2).fill(0xa5), 0x9000);
        case 0x03:
          throw new Error(`${name} fails on purpose`);
        case 0x04:
          return new ResponseApdu(fromHex('AABBCC'), 0x6283);
        case 0x05:
          return new ResponseApdu(Uint8Array.of(channel), 0x9000);
        case 0x06:
          return new ResponseApdu(apdu.data, 0x9000);
        default:
          throw new SwError(0x6d00);
      }
    },
  };
}

export function nameHex(name: string): string {
  return toHex(new TextEncoder().encode(name)).toUpperCase();
}

export { specBlocks, type SpecStep } from '../../helpers/spec-blocks.js';
import type { SpecStep } from '../../helpers/spec-blocks.js';

export async function replay(card: CardOs, steps: SpecStep[]): Promise<void> {
  for (const step of steps) {
    if (step.kind === 'reset') {
      card.reset();
      continue;
    }
    const got = await tx(card, step.command as string);
    const want = step.expect;
    if (!want) throw new Error(`spec: command without answer: ${step.line}`);
    if (want.exact !== undefined) {
      expect(got, step.line).toBe(want.exact);
    } else {
      const tail = want.tail as string;
      expect(got.endsWith(tail), `${step.line}: got …${got.slice(-8)}`).toBe(true);
      expect((got.length - tail.length) / 2, step.line).toBe(want.length);
    }
  }
}
