/**
 * The card bureau (emulator/bureau.ts): an issued purse with per-card keys, an initial load the
 * issuer authorized, an image that is never issued twice, and orders it refuses.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { FileStore } from '../../../emulator/store/file-store.js';
import { RamMedium } from '../../../emulator/store/medium.js';
import { EMONEY_SD_AID, BUREAU_TERMINAL_ID } from '../../../emulator/bureau.js';
import { GP_ISD_AID } from '../../../emulator/os/security-domain.js';
import { CommandApdu } from '../../../src/apdu/command.js';
import { ResponseApdu } from '../../../src/apdu/response.js';
import { openScp03 } from '../../../src/reader/scp03.js';
import { diversifyStaticKeys, kcvHex, kddFromSerial, testStaticKeys } from '../../../src/crypto/diversify.js';
import { purseCardKey, testPurseMasterKey, verifyPurseCertificate } from '../../../src/crypto/purse-certificate.js';
import { toHex } from '../../../src/util/bytes.js';
import { readPurseBalance, selectPurse } from '../../../src/terminal/purse/index.js';
import { cardOrder, issueCard, SERIAL, tempDir, Wire } from './helpers.js';

const selectAid = (aid: Uint8Array) => new CommandApdu({ cla: 0, ins: 0xa4, p1: 4, p2: 0x0c, data: aid });

describe('card bureau', () => {
  it('issues an active purse: currency, limits, the initial load certified for the issuer', async () => {
    const card = await issueCard({ initialLoad: 7000 });
    expect(card.issued).toBe(true);
    expect(card.loaded).toBe(7000);
    const key = purseCardKey(testPurseMasterKey(), SERIAL);
    expect(card.purseKeyKcv).toBe(kcvHex(key));
    const { status, log } = await readPurseBalance(new Wire(card));
    expect(status).toMatchObject({ active: true, counter: 1, balance: 7000, currency: 392, maxBalance: 100_000, maxPerTransaction: 30_000 });
    expect(log).toHaveLength(1);
    const [load] = log;
    expect(load).toMatchObject({ type: 'load', amount: 7000, terminalSequence: 1, balanceAfter: 7000 });
    expect(toHex(load.terminalId)).toBe(toHex(BUREAU_TERMINAL_ID));
    expect(verifyPurseCertificate(key, { serial: SERIAL, ...load, type: 'load' }, load.certificate)).toBe(true);
  });

  it('no initial load: balance 0, empty log', async () => {
    const card = await issueCard({ initialLoad: 0 });
    expect((await readPurseBalance(new Wire(card))).status).toMatchObject({ active: true, counter: 0, balance: 0, logCount: 0 });
  });

  it('the e-money domain holds keys diversified for the card: its own keys open a session, the master keys or another card’s do not', async () => {
    const card = await issueCard();
    const open = async (keys: ReturnType<typeof testStaticKeys>) => {
      const wire = new Wire(card);
      expect(ResponseApdu.decode(await wire.transmit(selectPurse().encode())).sw).toBe(0x9000);
      return openScp03(wire, { keys, securityLevel: 0x33 });
    };
    await expect(open(diversifyStaticKeys(testStaticKeys('emoney'), kddFromSerial(SERIAL)))).resolves.toBeDefined();
    await expect(open(testStaticKeys('emoney'))).rejects.toMatchObject({ code: 'AUTH_FAILED', reason: 'card-cryptogram' });
    await expect(open(diversifyStaticKeys(testStaticKeys('emoney'), kddFromSerial(Uint8Array.of(1, 2, 3))))).rejects.toMatchObject({ reason: 'card-cryptogram' });
  });

  it('testKeys adds the GP TEST KEYS issuer domain; without it the card has none', async () => {
    const sw = async (testKeys: boolean, aid: Uint8Array) => ResponseApdu.decode(await new Wire(await issueCard({ testKeys })).transmit(selectAid(aid).encode())).swHex;
    expect(await sw(true, GP_ISD_AID)).toBe('9000');
    expect(await sw(false, GP_ISD_AID)).toBe('6A82');
    expect(await sw(false, EMONEY_SD_AID)).toBe('9000');
  });

  it('a re-run on the same image keeps the issued purse: not issued, not loaded again', async () => {
    const tmp = tempDir();
    try {
      const image = join(tmp.dir, 'card.img');
      const first = await issueCard({ image, initialLoad: 5000 });
      expect(first.issued).toBe(true);
      if (first.store instanceof FileStore) first.store.close();
      const again = await issueCard({ image, initialLoad: 5000 });
      expect(again).toMatchObject({ issued: false, loaded: 0, purseKeyKcv: null });
      expect(again.status).toMatchObject({ counter: 1, balance: 5000 });
      if (again.store instanceof FileStore) again.store.close();
    } finally {
      tmp.remove();
    }
  });

  it('on a store the caller gives (tests: a tearing medium)', async () => {
    const card = await issueCard({ store: FileStore.open(new RamMedium()) });
    expect(card.issued).toBe(true);
  });

  it('refuses bad orders before building anything', async () => {
    await expect(issueCard({ initialLoad: 100_001 })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(issueCard({ maxPerTransaction: 100_001 })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(issueCard({ currency: 1000 })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(issueCard({ serial: new Uint8Array(0) })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(issueCard({ issuerMaster: new Uint8Array(15) })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(issueCard({ provider: 'bank' as 'emoney' })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    expect(cardOrder().provider).toBe('emoney');
  });
});
