/**
 * The status words the card OS and the bundled applets answer with (ISO/IEC 7816-4 §5.6,
 * GlobalPlatform, Java Card's ISO7816 interface), kept as one table so no literal is scattered.
 */
export const SW = {
  OK: 0x9000,
  /** 61xx: xx more bytes wait for GET RESPONSE (00 = 256 or more). */
  BYTES_REMAINING: 0x6100,
  MEMORY_FAILURE: 0x6581,
  WRONG_LENGTH: 0x6700,
  LOGICAL_CHANNEL_NOT_SUPPORTED: 0x6881,
  SECURE_MESSAGING_NOT_SUPPORTED: 0x6882,
  LAST_COMMAND_OF_CHAIN_EXPECTED: 0x6883,
  COMMAND_CHAINING_NOT_SUPPORTED: 0x6884,
  /** A protected command without an open secure channel, or one that failed verification. */
  SECURITY_STATUS_NOT_SATISFIED: 0x6982,
  CONDITIONS_NOT_SATISFIED: 0x6985,
  /** Java Card's SW_APPLET_SELECT_FAILED: the applet refused selection. */
  APPLET_SELECT_FAILED: 0x6999,
  FUNCTION_NOT_SUPPORTED: 0x6a81,
  FILE_NOT_FOUND: 0x6a82,
  NOT_ENOUGH_MEMORY: 0x6a84,
  INCORRECT_P1P2: 0x6a86,
  REFERENCED_DATA_NOT_FOUND: 0x6a88,
  /** 6Cxx: wrong Le, xx is the exact length (00 = 256). */
  CORRECT_LENGTH: 0x6c00,
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
  UNKNOWN: 0x6f00,
} as const;

/** 61xx for `remaining` bytes still to fetch: xx = remaining, or 00 when 256 or more remain. */
export function swBytesRemaining(remaining: number): number {
  return SW.BYTES_REMAINING | (remaining >= 256 ? 0 : remaining);
}

/** 6Cxx for an exact length of `length` bytes (1..256; 256 is coded 00). */
export function swCorrectLength(length: number): number {
  return SW.CORRECT_LENGTH | (length & 0xff);
}

/**
 * True when `sw` is a status word a card may send: SW1 is 61..6F or 90..9F (ISO/IEC 7816-3 §10.3.3;
 * 60 is the T=0 NULL procedure byte, anything else is not a status byte at all).
 */
export function isStatusWord(sw: number): boolean {
  if (!Number.isInteger(sw) || sw < 0 || sw > 0xffff) return false;
  const sw1 = sw >> 8;
  return (sw1 >= 0x61 && sw1 <= 0x6f) || (sw1 >= 0x90 && sw1 <= 0x9f);
}
