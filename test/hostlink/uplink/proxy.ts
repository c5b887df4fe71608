/**
 * A loopback TCP proxy between a terminal and the real gateway that can lose answers: frames from
 * the gateway (2-byte length, then the packed message whose first 2 bytes are the MTI in BCD) are
 * passed on unless a drop rule takes them. What the terminal sees is exactly a lost answer: the host
 * did the work, the terminal never hears of it.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

export class AnswerDroppingProxy {
  readonly port: number;
  /** Answers still to drop, by MTI ("0210", "0230", "0410", ...). */
  readonly drops = new Map<string, number>();
  /** Answers dropped so far, by MTI. */
  readonly dropped = new Map<string, number>();
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  private constructor(server: Server) {
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  static async start(upstreamPort: number): Promise<AnswerDroppingProxy> {
    let proxy: AnswerDroppingProxy | null = null;
    const server = createServer((client) => proxy?.accept(client, upstreamPort));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    proxy = new AnswerDroppingProxy(server);
    return proxy;
  }

  /** Drops the next `n` answers with this MTI. */
  drop(mti: string, n = 1): void {
    this.drops.set(mti, (this.drops.get(mti) ?? 0) + n);
  }

  private accept(client: Socket, upstreamPort: number): void {
    const upstream = connect(upstreamPort, '127.0.0.1');
    this.sockets.add(client);
    this.sockets.add(upstream);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    let buffered = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const frame = buffered.subarray(0, 2 + length);
        buffered = buffered.subarray(2 + length);
        const mti = length >= 2 ? frame.subarray(2, 4).toString('hex') : '';
        const left = this.drops.get(mti) ?? 0;
        if (left > 0) {
          this.drops.set(mti, left - 1);
          this.dropped.set(mti, (this.dropped.get(mti) ?? 0) + 1);
          continue;
        }
        client.write(frame);
      }
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.server.close();
    await once(this.server, 'close').catch(() => undefined);
  }
}
