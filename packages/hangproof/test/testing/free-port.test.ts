import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { freePort } from 'hangproof/testing';

function bind(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve()));
  });
}

function ephemeralStart(): number | undefined {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return undefined;
  }
}

test('freePort gives a port a server can listen on right away', async () => {
  for (let i = 0; i < 20; i++) await bind(await freePort());
});

test('freePort stays below the ephemeral range, so no outgoing connection can take the port first', async (t) => {
  const start = ephemeralStart();
  if (start === undefined) {
    t.skip('this platform does not say where its ephemeral ports start');
    return;
  }
  for (let i = 0; i < 20; i++) {
    const port = await freePort();
    assert.ok(port >= 10_000 && port < start, `port ${port} is outside 10000..${start - 1}`);
  }
});
