import { connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';

/** Where and how to reach the server that runs the backend to cancel. */
export interface CancelTarget {
  readonly host: string;
  readonly port: number;
  readonly ssl: boolean | ConnectionOptions | undefined;
  /** BackendKeyData of the session: process id and secret key (protocol 3.0, 4 bytes). */
  readonly processID: number;
  readonly secretKey: number;
}

const CANCEL_REQUEST_CODE = 80_877_102;
const SSL_REQUEST_CODE = 80_877_103;

/**
 * Sends a Postgres CancelRequest on a new connection and resolves once the server closed it (the
 * signal has been delivered to the backend), or after `timeoutMs` (a hung server never closes
 * it). Never rejects: a cancel is best effort, and the caller discards the connection anyway.
 *
 * Written here instead of pg's `Client.prototype.cancel`, which reads the deprecated
 * `activeQuery`, gives no completion signal and no bound, and sends the packet without TLS.
 * Resolves `true` when the server closed the socket.
 */
export function sendCancelRequest(target: CancelTarget, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const packet = Buffer.alloc(16);
    packet.writeInt32BE(16, 0);
    packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
    packet.writeInt32BE(target.processID, 8);
    packet.writeInt32BE(target.secretKey, 12);

    let settled = false;
    let current: Socket;
    const finish = (delivered: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      current.destroy();
      resolve(delivered);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    timer.unref();

    const raw = target.host.startsWith('/')
      ? netConnect(`${target.host}/.s.PGSQL.${target.port}`)
      : netConnect(target.port, target.host);
    current = raw;
    raw.setNoDelay(true);
    raw.on('error', () => finish(false));
    const watchClose = (s: Socket): void => {
      // The server answers a CancelRequest by closing the connection, nothing else.
      s.on('close', () => finish(true));
      s.on('data', () => {});
    };
    raw.once('connect', () => {
      if (target.ssl === undefined || target.ssl === false) {
        watchClose(raw);
        raw.write(packet);
        return;
      }
      const ssl = Buffer.alloc(8);
      ssl.writeInt32BE(8, 0);
      ssl.writeInt32BE(SSL_REQUEST_CODE, 4);
      raw.write(ssl);
      raw.once('data', (answer) => {
        if (answer[0] !== 0x53 /* 'S' */) {
          // The server refused TLS: the cancel goes in clear, as libpq does.
          watchClose(raw);
          raw.write(packet);
          return;
        }
        const options: ConnectionOptions = {
          ...(typeof target.ssl === 'object' ? target.ssl : {}),
          socket: raw,
          host: target.host,
        };
        const secure = tlsConnect(options, () => secure.write(packet));
        current = secure;
        secure.on('error', () => finish(false));
        watchClose(secure);
      });
    });
  });
}
