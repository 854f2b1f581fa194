import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';

/** Where Linux keeps the range it hands out as ephemeral (outgoing) source ports. */
const EPHEMERAL_RANGE_FILE = '/proc/sys/net/ipv4/ip_local_port_range';
/** Ports at or above this and below the ephemeral range are the ones tried first. */
const LOWEST_PORT = 10_000;
const ATTEMPTS = 50;

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for a server another process is about to
 * start. Port 0 would work but comes from the ephemeral range, and between this check and the
 * child's listen any outgoing connection on the machine may take that very port as its source
 * port. So the port is picked at random below the ephemeral range, where the kernel never assigns
 * source ports, and checked by binding it; port 0 remains the fallback (no such range known, or
 * no free port found in 50 tries).
 */
export async function freePort(): Promise<number> {
  const ephemeralStart = await ephemeralRangeStart();
  if (ephemeralStart !== undefined && ephemeralStart - LOWEST_PORT > ATTEMPTS) {
    for (let i = 0; i < ATTEMPTS; i++) {
      const port = LOWEST_PORT + Math.floor(Math.random() * (ephemeralStart - LOWEST_PORT));
      if ((await tryBind(port)) === port) return port;
    }
  }
  return (await tryBind(0)) ?? Promise.reject(new Error('no free TCP port on 127.0.0.1'));
}

/** The first port of the ephemeral range, when the platform says. */
async function ephemeralRangeStart(): Promise<number | undefined> {
  try {
    const first = Number((await readFile(EPHEMERAL_RANGE_FILE, 'utf8')).trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 0 ? first : undefined;
  } catch {
    return undefined;
  }
}

/** Binds `port` (0: any) on 127.0.0.1 and lets it go; the port bound, or undefined when taken. */
function tryBind(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => {
      const addr = srv.address();
      const bound = typeof addr === 'object' && addr !== null ? addr.port : undefined;
      srv.close(() => resolve(bound));
    });
  });
}
