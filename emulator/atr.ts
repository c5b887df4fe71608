/**
 * The emulated card's default ATR, built from what the card really offers so a reader that decodes
 * it (ATR_analysis, `hilt atr`) learns the truth:
 *
 *   3B        TS direct convention
 *   8A        T0: TD1 follows, 10 historical bytes
 *   80        TD1: TD2 follows, T=0
 *   01        TD2: T=1
 *   80        category indicator: compact-TLV follows
 *   73 C0 01 DB   card capabilities: selection by full and partial DF name; data coding 01;
 *                 command chaining, extended Lc/Le, channel assignment by card and by terminal,
 *                 4 logical channels
 *   54 68 69 6C 74   card issuer's data "hilt"
 *   TCK       XOR of T0..last historical byte
 */
export function withTck(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 1);
  out.set(body);
  let x = 0;
  for (let i = 1; i < body.length; i++) x ^= body[i];
  out[body.length] = x;
  return out;
}

export const DEFAULT_ATR: Uint8Array = withTck(
  Uint8Array.of(0x3b, 0x8a, 0x80, 0x01, 0x80, 0x73, 0xc0, 0x01, 0xdb, 0x54, 0x68, 0x69, 0x6c, 0x74),
);
