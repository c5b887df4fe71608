/**
 * The terminal's MAC key change (0800 network code 161), terminal side.
 *
 *   1. 0800 161 under the current key; the gateway answers 0810 00 with 48 {DF20 new version,
 *      DF21 the new MAC key wrapped under the terminal's KEK, DF22 its check value}, MACed with the
 *      current key (the host now accepts the new version too, and makes it the only one at the first
 *      message that uses it);
 *   2. the key is unwrapped with the configured KEK and checked against its KCV (mac.ts unwrapKey).
 *      A wrong KEK, or a damaged answer: KeyUnwrapError (AUTH_FAILED), nothing stored, the old key
 *      stays in use (the host keeps accepting it: its new version is only pending);
 *   3. the new key and version are written to the uplink store (committed, synchronous=FULL) BEFORE
 *      anything uses them: a crash after this point restarts under the new key, a crash before it
 *      under the old one, and the host accepts either until the new one is used;
 *   4. the key ring switches: every later message carries the new version (53) and its MAC;
 *   5. an echo under the new key confirms it (and makes it the host's current version).
 *
 * Asked again before the new key was ever used, the host hands out the same version and key again.
 * Neither the key nor the KEK is ever logged or put in an error; the result carries the KCV only.
 */
import { RC, RESPONSE_CODES, keyChangeRequest, parseNetworkResponse } from '../messages.js';
import { unwrapKey } from '../iso8583/mac.js';
import { BadInputError } from '../../util/errors.js';
import { toHex, zeroize } from '../../util/bytes.js';
import { UplinkError } from './errors.js';
import type { MacKeyRing } from './keys.js';
import type { UplinkLink } from './link.js';

export interface KeyChangeOptions {
  link: UplinkLink;
  keys: MacKeyRing;
  /** Default true: send an echo under the new key once it is installed. */
  confirm?: boolean;
}

export interface KeyChangeResult {
  fromVersion: number;
  toVersion: number;
  /** The new key's check value (3 bytes, hex): enough to compare with the host's, nothing more. */
  kcv: string;
  /** The echo under the new key was answered 00 (false when not asked for). */
  confirmed: boolean;
}

/** Changes the terminal's MAC key (see the top of this file). */
export async function changeKey(o: KeyChangeOptions): Promise<KeyChangeResult> {
  const { link, keys } = o;
  const kek = link.config.kek;
  if (kek === undefined) throw new BadInputError(`key change: terminal ${link.config.terminalId} has no key-encryption key configured (kek)`);
  const fromVersion = keys.version;
  let answer;
  try {
    const session = await link.session();
    answer = parseNetworkResponse(await session.request((h) => keyChangeRequest(h)));
  } catch (e) {
    if (!(e instanceof UplinkError)) await link.drop();
    throw e;
  }
  if (answer.responseCode !== RC.approved || answer.keyChange === undefined) {
    throw new UplinkError('protocol', `key change: the host answered ${answer.responseCode} (${RESPONSE_CODES.get(answer.responseCode)?.meaning ?? 'unknown'})`);
  }
  const { newKeyVersion, key: wrapped } = answer.keyChange;
  if (newKeyVersion <= fromVersion) throw new UplinkError('protocol', `key change: the host handed out version ${newKeyVersion}, not above the current ${fromVersion}`);
  const key = unwrapKey(kek, wrapped.wrapped, wrapped.kcv); // KeyUnwrapError: nothing stored, old key kept
  try {
    link.store.saveMacKey(newKeyVersion, key); // on disk before any use
    keys.install(newKeyVersion, key);
  } finally {
    zeroize(key);
  }
  let confirmed = false;
  if (o.confirm !== false) {
    const session = await link.session();
    await session.echo();
    confirmed = true;
  }
  return { fromVersion, toVersion: newKeyVersion, kcv: toHex(wrapped.kcv).toUpperCase(), confirmed };
}
