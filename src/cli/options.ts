/** Option parsers shared by commands: each turns a string into a validated value or a BadInputError. */
import { BadInputError } from '../util/errors.js';
import { fromHex } from '../util/bytes.js';

export function parseIntOption(name: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = /^(0x[0-9a-f]+|\d+)$/i.test(v.trim()) ? Number(v.trim()) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) throw new BadInputError(`${name}: expected an integer from ${min} to ${max}, got "${v}"`);
    return n;
  };
}

export function parseHexOption(name: string, minBytes = 1, maxBytes = 65536): (v: string) => Uint8Array {
  return (v) => {
    let b: Uint8Array;
    try {
      b = fromHex(v);
    } catch (e) {
      throw new BadInputError(`${name}: ${(e as Error).message}`);
    }
    if (b.length < minBytes || b.length > maxBytes) {
      throw new BadInputError(`${name}: expected ${minBytes} to ${maxBytes} bytes, got ${b.length}`);
    }
    return b;
  };
}

export interface Endpoint {
  host: string;
  port: number;
}

/** "host:port", ":port", "port" or "vpcd://host:port". */
export function parseEndpoint(name: string, defaultHost: string): (v: string) => Endpoint {
  return (v) => {
    const m = /^(?:vpcd:\/\/)?(?:(\[[^\]]+\]|[^:]*):)?(\d{1,5})$/.exec(v.trim());
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) throw new BadInputError(`${name}: expected host:port, got "${v}"`);
    const host = m[1] ? m[1].replace(/^\[|\]$/g, '') : defaultHost;
    return { host, port };
  };
}
