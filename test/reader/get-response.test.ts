import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HandlerChannel, ScriptedChannel } from '../../src/reader/mock.js';
import { DEFAULT_MAX_GET_RESPONSES, getResponseCommand, withGetResponse } from '../../src/reader/get-response.js';
import { ProtocolError } from '../../src/util/errors.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';

const SELECT = fromHex('00A4040007A000000003101000');

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}
const hex = (b: Uint8Array): string => toHex(b).toUpperCase();

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/**
 * A T=0 card serving `payload` for any command but GET RESPONSE: it announces the next part with
 * 61xx, the part size taken in turn from `chunks`, and ends with `finalSw`.
 */
function t0Card(payload: Uint8Array, chunks: readonly number[], finalSw: number) {
  let offset = 0;
  let next = 0;
  const getResponses: number[] = [];
  const announce = (): Uint8Array => {
    const remaining = payload.length - offset;
    if (remaining === 0) return Uint8Array.of(finalSw >> 8, finalSw & 0xff);
    const n = Math.min(remaining, chunks[next++ % chunks.length], 256);
    return Uint8Array.of(0x61, n & 0xff);
  };
  const handler = (cmd: Uint8Array): Uint8Array => {
    if (cmd[1] !== 0xc0) {
      offset = 0;
      return announce();
    }
    const le = cmd[4] === 0 ? 256 : cmd[4];
    getResponses.push(le);
    const part = payload.subarray(offset, Math.min(payload.length, offset + le));
    offset += part.length;
    return concatBytes(part, announce());
  };
  return { handler, getResponses };
}

describe('withGetResponse: 61xx', () => {
  it('accumulates 600 bytes sent in 256-byte parts (61 00 meaning 256)', async () => {
    const data = bytes(600, 7);
    const card = new ScriptedChannel([
      [SELECT, '6100'],
      ['00C0000000', concatBytes(data.subarray(0, 256), fromHex('6100'))],
      ['00C0000000', concatBytes(data.subarray(256, 512), fromHex('6158'))],
      ['00C0000058', concatBytes(data.subarray(512), fromHex('9000'))],
    ]);
    const ch = withGetResponse()(card);
    const r = await ch.transmit(SELECT);
    expect(r.length).toBe(602);
    expect(hex(r)).toBe(hex(data) + '9000');
    card.assertDone();
  });

  it('keeps data that came with the first answer and returns the final warning SW', async () => {
    const card = new ScriptedChannel([
      ['80CA9F7F00', '11226102'],
      ['00C0000002', '33446282'],
    ]);
    expect(hex(await withGetResponse()(card).transmit(fromHex('80CA9F7F00')))).toBe('112233446282');
    card.assertDone();
  });

  it.each([
    [0x00, 0x00],
    [0x80, 0x00], // GlobalPlatform class, channel 0: GET RESPONSE is interindustry 00
    [0x84, 0x00],
    [0x03, 0x03],
    [0x83, 0x03],
    [0x45, 0x45], // further interindustry, channel 9
    [0xe1, 0x41], // GlobalPlatform secure channel 5
  ])('sends GET RESPONSE with CLA %s → %s on the command\'s logical channel', async (cla, grCla) => {
    const cmd = Uint8Array.of(cla, 0xca, 0x00, 0x66, 0x00);
    const card = new ScriptedChannel([
      [cmd, '6101'],
      [Uint8Array.of(grCla, 0xc0, 0, 0, 1), '779000'],
    ]);
    expect(hex(await withGetResponse()(card).transmit(cmd))).toBe('779000');
    card.assertDone();
  });

  it('stops a card that answers 6101 forever after maxGetResponses (ProtocolError, not a hang)', async () => {
    const card = new HandlerChannel((cmd) => (cmd[1] === 0xc0 ? fromHex('AA6101') : fromHex('6101')));
    const err = await rejection(withGetResponse()(card).transmit(fromHex('00B0000000')));
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toMatch(/6101 after 128 GET RESPONSE commands \(maxGetResponses = 128\)/);
    expect(card.counters.transmits).toBe(1 + DEFAULT_MAX_GET_RESPONSES);

    const small = new HandlerChannel((cmd) => (cmd[1] === 0xc0 ? fromHex('AA6101') : fromHex('6101')));
    await expect(withGetResponse({ maxGetResponses: 3 })(small).transmit(fromHex('00B0000000'))).rejects.toThrow(ProtocolError);
    expect(small.counters.transmits).toBe(4);
  });

  it('allows exactly maxGetResponses parts', async () => {
    const { handler } = t0Card(bytes(30, 1), [10], 0x9000);
    const r = await withGetResponse({ maxGetResponses: 3 })(new HandlerChannel(handler)).transmit(fromHex('00B0000000'));
    expect(hex(r)).toBe(hex(bytes(30, 1)) + '9000');
  });

  it('re-issues a GET RESPONSE answered 6Cxx with the corrected Le', async () => {
    const card = new ScriptedChannel([
      ['00B0000000', '6100'],
      ['00C0000000', '6C80'],
      ['00C0000080', concatBytes(bytes(128, 3), fromHex('9000'))],
    ]);
    expect(hex(await withGetResponse()(card).transmit(fromHex('00B0000000')))).toBe(hex(bytes(128, 3)) + '9000');
    card.assertDone();
  });

  it('returns 61xx as it is when getResponse is false', async () => {
    const card = new ScriptedChannel([['00B0000000', '6110']]);
    expect(hex(await withGetResponse({ getResponse: false })(card).transmit(fromHex('00B0000000')))).toBe('6110');
    card.assertDone();
  });

  it('does not interleave another caller\'s command inside a GET RESPONSE sequence', async () => {
    const card = new ScriptedChannel([
      ['00B0000000', '6102'],
      ['00C0000002', '01029000'],
      ['00CA006600', '9000'],
    ]);
    const ch = withGetResponse()(card);
    const [a, b] = await Promise.all([ch.transmit(fromHex('00B0000000')), ch.transmit(fromHex('00CA006600'))]);
    expect(hex(a)).toBe('01029000');
    expect(hex(b)).toBe('9000');
    card.assertDone();
  });

  it('passes other answers through byte for byte', async () => {
    const card = new ScriptedChannel([['00A4040000', '6A82']]);
    expect(hex(await withGetResponse()(card).transmit(fromHex('00A4040000')))).toBe('6A82');
  });

  it('refuses a bad bound when the wrapper is made', () => {
    expect(() => withGetResponse({ maxGetResponses: 0 })).toThrow(/maxGetResponses: expected an integer from 1/);
    expect(() => getResponseCommand(0, 257)).toThrow(/Ne/);
  });

  it('property: random payloads of 0..2000 bytes in random 61xx chunks come back exactly', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 0, maxLength: 2000 }),
        fc.array(fc.integer({ min: 1, max: 256 }), { minLength: 1, maxLength: 20 }),
        fc.constantFrom(0x9000, 0x6282, 0x6310),
        async (payload, chunks, finalSw) => {
          const card = t0Card(payload, chunks, finalSw);
          const ch = withGetResponse({ maxGetResponses: 2000 })(new HandlerChannel(card.handler));
          const r = await ch.transmit(fromHex('80CA9F7F00'));
          expect(hex(r)).toBe(hex(payload) + hex(Uint8Array.of(finalSw >> 8, finalSw & 0xff)));
          expect(card.getResponses.reduce((a, b) => a + b, 0)).toBe(payload.length);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('withGetResponse: 6Cxx', () => {
  it('re-issues once with Le = xx, then a second 6Cxx is returned as it is', async () => {
    const card = new ScriptedChannel([
      ['80CA9F7F00', '6C2D'],
      ['80CA9F7F2D', concatBytes(bytes(45, 9), fromHex('9000'))],
      ['80CA9F7F00', '6C2D'],
      ['80CA9F7F2D', '6C10'],
    ]);
    const ch = withGetResponse()(card);
    expect(hex(await ch.transmit(fromHex('80CA9F7F00')))).toBe(hex(bytes(45, 9)) + '9000');
    expect(hex(await ch.transmit(fromHex('80CA9F7F00')))).toBe('6C10');
    card.assertDone(); // and nothing more was sent: no loop
  });

  it('reads 6C00 as Le 256', async () => {
    const card = new ScriptedChannel([
      ['00B0000001', '6C00'],
      ['00B0000000', concatBytes(bytes(256, 2), fromHex('9000'))],
    ]);
    expect((await withGetResponse()(card).transmit(fromHex('00B0000001'))).length).toBe(258);
    card.assertDone();
  });

  it('handles a case-4 command: corrected Le, then 61xx via GET RESPONSE', async () => {
    const card = new ScriptedChannel([
      ['00880000081122334455667788' + '00', '6C10'],
      ['00880000081122334455667788' + '10', '6110'],
      ['00C0000010', concatBytes(bytes(16, 5), fromHex('9000'))],
    ]);
    const r = await withGetResponse()(card).transmit(fromHex('0088000008112233445566778800'));
    expect(hex(r)).toBe(hex(bytes(16, 5)) + '9000');
    card.assertDone();
  });

  it('keeps the extended form of an extended command', async () => {
    const card = new ScriptedChannel([
      ['00CB3FFF000005', '6C20'],
      ['00CB3FFF000020', concatBytes(bytes(32, 1), fromHex('9000'))],
    ]);
    expect((await withGetResponse()(card).transmit(fromHex('00CB3FFF000005'))).length).toBe(34);
    card.assertDone();
  });

  it('returns 6Cxx as it is when reissueOn6C is false, or when the command cannot be re-coded', async () => {
    const card = new ScriptedChannel([
      ['80CA9F7F00', '6C2D'],
      ['00B000000511', '6C05'], // Lc 5 with one data byte: not an APDU, nothing to correct
    ]);
    expect(hex(await withGetResponse({ reissueOn6C: false })(card).transmit(fromHex('80CA9F7F00')))).toBe('6C2D');
    expect(hex(await withGetResponse()(card).transmit(fromHex('00B000000511')))).toBe('6C05');
    card.assertDone();
  });
});
