/**
 * Where the CLI gets a terminal's host-link keys (its own MAC key, KEK and key version; never a host
 * master): a key file with lines `mac = <hex>`, `kek = <hex>`, `version = <n>` ('#' or ';' comments,
 * a `[section]` header allowed), else HILT_UPLINK_MAC_KEY, HILT_UPLINK_KEK, HILT_UPLINK_KEY_VERSION,
 * else the published TEST keys derived for the terminal id. Used by `hilt uplink` and `hilt load`.
 * Key bytes are decoded from the file's bytes, the buffers zeroed; they are never printed.
 */
import { readFile } from 'node:fs/promises';
import type { CliContext } from './context.js';
import { parseIntOption } from './options.js';
import { KeyFileError, secretHexFromBytes, secretHexFromString } from '../terminal/keystore-file.js';
import { testTerminalKek, testTerminalMacKey } from '../hostlink/test-keys.js';
import { BadInputError } from '../util/errors.js';
import { zeroize } from '../util/bytes.js';

export const UPLINK_MAC_KEY_ENV = 'HILT_UPLINK_MAC_KEY';
export const UPLINK_KEK_ENV = 'HILT_UPLINK_KEK';
export const UPLINK_KEY_VERSION_ENV = 'HILT_UPLINK_KEY_VERSION';

export interface TerminalKeys {
  macKey: Uint8Array;
  kek?: Uint8Array;
  keyVersion?: number;
  source: 'file' | 'env' | 'test';
}

const KEY_FILE_FIELDS = new Set(['mac', 'kek', 'version']);

/** The key file: `name = value` lines; key values decoded from the file's bytes, the buffer zeroed. */
export async function readUplinkKeyFile(path: string, option = '--keys'): Promise<TerminalKeys> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new BadInputError(`${option}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const found: { mac?: Uint8Array; kek?: Uint8Array; version?: number } = {};
  try {
    let start = 0;
    for (let line = 1; start <= bytes.length; line++) {
      let end = bytes.indexOf(0x0a, start);
      if (end < 0) end = bytes.length;
      const raw = bytes.subarray(start, end);
      start = end + 1;
      let a = 0;
      let b = raw.length;
      while (a < b && (raw[a] === 0x20 || raw[a] === 0x09)) a++;
      while (b > a && (raw[b - 1] === 0x20 || raw[b - 1] === 0x09 || raw[b - 1] === 0x0d)) b--;
      if (a === b || raw[a] === 0x23 || raw[a] === 0x3b || raw[a] === 0x5b) continue; // blank, comment, [section]
      const eq = raw.indexOf(0x3d, a);
      if (eq < 0 || eq >= b) throw new KeyFileError(path, line, 'expected name = value');
      const name = Buffer.from(raw.subarray(a, eq)).toString('latin1').trim().toLowerCase();
      if (!KEY_FILE_FIELDS.has(name)) throw new KeyFileError(path, line, `unknown field '${name.slice(0, 20)}' (expected mac, kek, version)`);
      if (name in found) throw new KeyFileError(path, line, `${name} given twice`);
      const value = raw.subarray(eq + 1, b);
      if (name === 'version') {
        const text = Buffer.from(value).toString('latin1').trim();
        const n = /^\d{1,3}$/.test(text) ? Number(text) : NaN;
        if (!(n >= 1 && n <= 255)) throw new KeyFileError(path, line, 'version: expected an integer from 1 to 255');
        found.version = n;
        continue;
      }
      try {
        found[name as 'mac' | 'kek'] = secretHexFromBytes(value);
      } catch (e) {
        throw new KeyFileError(path, line, `${name}: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    zeroize(...[found.mac, found.kek].filter((k): k is Uint8Array => k !== undefined));
    throw e;
  } finally {
    zeroize(bytes);
  }
  if (found.mac === undefined) {
    if (found.kek !== undefined) zeroize(found.kek);
    throw new KeyFileError(path, undefined, 'no mac key (mac = <hex>)');
  }
  return { macKey: found.mac, kek: found.kek, keyVersion: found.version, source: 'file' };
}

export function keysFromEnv(env: NodeJS.ProcessEnv): TerminalKeys | null {
  const mac = env[UPLINK_MAC_KEY_ENV];
  if (mac === undefined || mac.trim() === '') return null;
  const at = (name: string, text: string): Uint8Array => {
    try {
      return secretHexFromString(text);
    } catch (e) {
      throw new KeyFileError(`environment (${name})`, undefined, (e as Error).message);
    }
  };
  const keys: TerminalKeys = { macKey: at(UPLINK_MAC_KEY_ENV, mac), source: 'env' };
  const kek = env[UPLINK_KEK_ENV];
  if (kek !== undefined && kek.trim() !== '') keys.kek = at(UPLINK_KEK_ENV, kek);
  const version = env[UPLINK_KEY_VERSION_ENV];
  if (version !== undefined && version.trim() !== '') keys.keyVersion = parseIntOption(UPLINK_KEY_VERSION_ENV, 1, 255)(version);
  return keys;
}

/**
 * The terminal's host keys: the key file when given, else the environment, else the TEST keys
 * derived for `terminalId` at `testKeyVersion` (said on stderr, labelled TEST KEYS).
 */
export async function terminalHostKeys(
  keyFile: string | undefined,
  terminalId: string,
  ctx: CliContext,
  o: { option?: string; testKeyVersion?: number } = {},
): Promise<TerminalKeys> {
  if (keyFile !== undefined) return readUplinkKeyFile(keyFile, o.option);
  const fromEnv = keysFromEnv(process.env);
  if (fromEnv !== null) return fromEnv;
  ctx.io.err(`hilt: TEST KEYS: terminal ${terminalId}'s host MAC key and KEK derived from the published test masters (demos and tests only)`);
  const v = o.testKeyVersion;
  return { macKey: testTerminalMacKey(terminalId, v), kek: testTerminalKek(terminalId, v), keyVersion: v, source: 'test' };
}

