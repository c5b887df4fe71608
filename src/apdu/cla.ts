/**
 * The class byte (ISO/IEC 7816-4 §5.4.1; GlobalPlatform Card Specification §11.1.4; Java Card
 * runtime environment, "logical channels and class byte").
 *
 *   CLA        | kind                     | chaining | secure messaging            | channel
 *   -----------|--------------------------|----------|-----------------------------|-----------------
 *   000x xxxx  | first interindustry      | b5       | b4b3 (4 indications)        | b2b1       → 0..3
 *   01xx xxxx  | further interindustry    | b5       | b6 (none / ISO SM, header   | b4..b1 + 4 → 4..19
 *              |                          |          |     not processed)          |
 *   001x xxxx  | reserved for future use  |          |                             |
 *   10xx xxxx  | proprietary, first form  | b5       | b4b3 (GlobalPlatform 84: 01)| b2b1       → 0..3
 *              | (b6 not used)            |          |                             |
 *   11xx xxxx  | proprietary, further form| b5       | b6 (GlobalPlatform SM)      | b4..b1 + 4 → 4..19
 *   FF         | invalid (PPS)            |          |                             |
 *
 * ISO leaves the coding of proprietary classes to the application; GlobalPlatform and Java Card code
 * them as the interindustry forms with b8 set (80..83 / 84..87 channels 0..3, C0..CF / E0..EF channels
 * 4..19), and Java Card reads 8X..BX as the first form, so that is how proprietary classes decode
 * here. In the proprietary further form the single SM bit is GlobalPlatform's secure messaging (E0 is
 * the channel-4 form of 84), so it decodes as 'proprietary', like 84 does.
 */
import { BadInputError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';
import { hexByte } from '../util/bytes.js';

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

/** SM indications of the first form, indexed by b4b3. */
const FIRST_FORM_SM: readonly SecureMessaging[] = ['none', 'proprietary', 'iso-header-not-processed', 'iso-header-authenticated'];

const CHAINING_BIT = 0x10;
const FURTHER_FORM_BIT = 0x40;
const FURTHER_SM_BIT = 0x20;

export function decodeCla(cla: number): ClaInfo {
  assertInt(cla, 'CLA', 0, 0xff);
  if (cla === 0xff) return { cla, kind: 'invalid', proprietary: true, chaining: false, secureMessaging: 'none', channel: -1 };
  const proprietary = (cla & 0x80) !== 0;
  const chaining = (cla & CHAINING_BIT) !== 0;
  if (!proprietary && (cla & 0x60) === 0x20) {
    return { cla, kind: 'rfu', proprietary, chaining: false, secureMessaging: 'none', channel: -1 };
  }
  if ((cla & FURTHER_FORM_BIT) === 0) {
    return {
      cla,
      kind: proprietary ? 'proprietary' : 'interindustry',
      proprietary,
      chaining,
      secureMessaging: FIRST_FORM_SM[(cla >> 2) & 3],
      channel: cla & 3,
    };
  }
  const furtherSm: SecureMessaging = proprietary ? 'proprietary' : 'iso-header-not-processed';
  return {
    cla,
    kind: proprietary ? 'proprietary' : 'further-interindustry',
    proprietary,
    chaining,
    secureMessaging: (cla & FURTHER_SM_BIT) !== 0 ? furtherSm : 'none',
    channel: 4 + (cla & 0x0f),
  };
}

/** The logical channel a CLA addresses (0 for classes that encode none). */
export function claChannel(cla: number): number {
  return Math.max(0, decodeCla(cla).channel);
}

/**
 * Re-codes `cla` for logical channel `channel` (0..19), keeping the proprietary, chaining and SM bits.
 * Within one form (channels 0..3, or 4..19) only the channel bits change. Across forms the SM
 * indication is carried over when the target form can express it: the further forms have one SM bit,
 * which means ISO SM with the header not processed (b4b3 = 10) for interindustry classes and
 * GlobalPlatform SM (b4b3 = 01, the 84 of 84 ↔ E0) for proprietary ones. Any other SM indication, a
 * class without channel bits (RFU, FF) and a result of FF are refused with a BadInputError.
 */
export function claForChannel(cla: number, channel: number): number {
  assertInt(channel, 'channel', 0, 19);
  const info = decodeCla(cla);
  if (info.channel < 0) throw new BadInputError(`CLA ${hexByte(cla)} does not encode a logical channel`);
  const toFirst = channel < 4;
  let out: number;
  if ((info.channel < 4) === toFirst) {
    out = toFirst ? (cla & ~0x03) | channel : (cla & ~0x0f) | (channel - 4);
  } else {
    const b8 = cla & 0x80;
    const chain = info.chaining ? CHAINING_BIT : 0;
    // The one SM indication each further form can carry, as its first-form b4b3 value.
    const expressible: SecureMessaging = info.proprietary ? 'proprietary' : 'iso-header-not-processed';
    if (info.secureMessaging !== 'none' && info.secureMessaging !== expressible) {
      throw new BadInputError(
        `CLA ${hexByte(cla)}: secure messaging "${info.secureMessaging}" cannot be coded for channel ${channel}`,
      );
    }
    const sm = info.secureMessaging !== 'none';
    out = toFirst
      ? b8 | chain | (sm ? FIRST_FORM_SM.indexOf(expressible) << 2 : 0) | channel
      : b8 | FURTHER_FORM_BIT | (sm ? FURTHER_SM_BIT : 0) | chain | (channel - 4);
  }
  if (out === 0xff) throw new BadInputError(`CLA ${hexByte(cla)} on channel ${channel} would be FF, which is invalid`);
  return out;
}

/**
 * Sets or clears the command-chaining bit (b5), valid in both interindustry forms and the proprietary
 * ones. Refuses RFU classes, FF, and setting the bit on EF (the result would be the invalid FF).
 */
export function claWithChaining(cla: number, chaining: boolean): number {
  const info = decodeCla(cla);
  if (info.kind === 'rfu' || info.kind === 'invalid') {
    throw new BadInputError(`CLA ${hexByte(cla)} has no command-chaining bit`);
  }
  const out = chaining ? cla | CHAINING_BIT : cla & ~CHAINING_BIT & 0xff;
  if (out === 0xff) throw new BadInputError(`CLA ${hexByte(cla)} with chaining would be FF, which is invalid`);
  return out;
}
