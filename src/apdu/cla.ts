/**
 * The class byte (ISO/IEC 7816-4 §5.4.1; GlobalPlatform Card Specification §11.1.4).
 *
 *   CLA        | kind                     | chaining | secure messaging        | channel
 *   -----------|--------------------------|----------|-------------------------|--------
 *   000x xxxx  | first interindustry      | b5       | b4b3 (4 indications)    | b2b1  → 0..3
 *   01xx xxxx  | further interindustry    | b5       | b6 (none / not header)  | b4..b1 + 4 → 4..19
 *   001x xxxx  | reserved for future use  |          |                         |
 *   1xxx xxxx  | proprietary; GlobalPlatform codes its commands as the interindustry
 *              | forms with b8 set (80..83 / 84..87 channels 0..3; C0..CF / E0..EF channels 4..19)
 *   FF         | invalid (PPS)
 */
import { BadInputError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';

export type ClaKind = 'interindustry' | 'further-interindustry' | 'proprietary' | 'rfu' | 'invalid';
export type SecureMessaging = 'none' | 'proprietary' | 'iso-header-not-processed' | 'iso-header-authenticated';

export interface ClaInfo {
  cla: number;
  kind: ClaKind;
  /** Proprietary class with b8 set; GlobalPlatform commands (80, 84, C0, ...) are in this class. */
  proprietary: boolean;
  /** Command chaining: "this is not the last command of a chain". */
  chaining: boolean;
  secureMessaging: SecureMessaging;
  /** Logical channel 0..19; -1 when the class does not encode one. */
  channel: number;
}

export function decodeCla(cla: number): ClaInfo {
  assertInt(cla, 'CLA', 0, 0xff);
  if (cla === 0xff) return { cla, kind: 'invalid', proprietary: true, chaining: false, secureMessaging: 'none', channel: -1 };
  const proprietary = (cla & 0x80) !== 0;
  const low = cla & 0x7f;
  if ((low & 0x60) === 0x00) {
    const sm = (['none', 'proprietary', 'iso-header-not-processed', 'iso-header-authenticated'] as const)[(low >> 2) & 3];
    return {
      cla,
      kind: proprietary ? 'proprietary' : 'interindustry',
      proprietary,
      chaining: (low & 0x10) !== 0,
      secureMessaging: sm,
      channel: low & 3,
    };
  }
  if ((low & 0x40) === 0x40) {
    return {
      cla,
      kind: proprietary ? 'proprietary' : 'further-interindustry',
      proprietary,
      chaining: (low & 0x10) !== 0,
      secureMessaging: (low & 0x20) !== 0 ? 'iso-header-not-processed' : 'none',
      channel: 4 + (low & 0x0f),
    };
  }
  return { cla, kind: proprietary ? 'proprietary' : 'rfu', proprietary, chaining: false, secureMessaging: 'none', channel: -1 };
}

/** The logical channel a CLA addresses (0 for classes that encode none). */
export function claChannel(cla: number): number {
  return Math.max(0, decodeCla(cla).channel);
}

/** Re-codes `cla` for logical channel `channel` (0..19), keeping the proprietary, chaining and SM bits. */
export function claForChannel(cla: number, channel: number): number {
  assertInt(channel, 'channel', 0, 19);
  const info = decodeCla(cla);
  if (info.channel < 0) throw new BadInputError(`CLA ${cla.toString(16)} does not encode a logical channel`);
  const b8 = cla & 0x80;
  const chain = info.chaining ? 0x10 : 0;
  if (channel < 4) {
    const sm = { none: 0, proprietary: 1, 'iso-header-not-processed': 2, 'iso-header-authenticated': 3 }[info.secureMessaging];
    return b8 | chain | (sm << 2) | channel;
  }
  // Further channels have a single SM bit (b6); GlobalPlatform sets it for its secure channel (84 → E0).
  const sm = info.secureMessaging === 'none' ? 0 : 0x20;
  return b8 | 0x40 | sm | chain | (channel - 4);
}

/** Sets or clears the command-chaining bit (b5), valid in both interindustry forms. */
export function claWithChaining(cla: number, chaining: boolean): number {
  return chaining ? cla | 0x10 : cla & ~0x10 & 0xff;
}
