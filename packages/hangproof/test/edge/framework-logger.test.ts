import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import Fastify from 'fastify';
import { currentContext, LOG_EVENTS } from 'hangproof';
import { hangproof } from 'hangproof/fastify';
import { withHangproof } from 'hangproof/http';
import { overloadGuard } from 'hangproof/observe';
import { pino } from 'pino';

/** A pino destination that keeps each written line, raw. */
function capture(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(l);
      done();
    },
  });
  return { stream, lines };
}

test("without a logger option the request line goes to Fastify's loggerInstance, with its bindings, once per key", async () => {
  const out = capture();
  const base = pino({ level: 'info', base: { service: 'desk' } }, out.stream);
  const app = Fastify({ loggerInstance: base.child({ region: 'eu' }), disableRequestLogging: true });
  await app.register(hangproof, { deadlineMs: 1000 });
  app.get('/bots/:id', async () => ({ ok: true }));
  app.get('/teapot', async () => {
    const ctx = currentContext();
    if (ctx !== undefined) ctx.fields.res = { statusCode: 418, extra: 'dropped by the serializer' };
    return { ok: true };
  });
  await app.ready();
  // Counts the lines pino builds: a healthy line without serialized fields is written directly.
  let viaPino = 0;
  const info = app.log.info.bind(app.log);
  app.log.info = ((...args: Parameters<typeof info>) => {
    if (args.includes('request completed' as never)) viaPino++;
    return info(...args);
  }) as typeof info;
  await app.listen({ port: 0, host: '127.0.0.1' });
  try {
    const { port } = app.server.address() as { port: number };
    const res = await fetch(`http://127.0.0.1:${port}/bots/7`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(viaPino, 0, 'the plain line was written directly');
    const teapot = await fetch(`http://127.0.0.1:${port}/teapot`, { signal: AbortSignal.timeout(5_000) });
    await teapot.arrayBuffer();
    await app.close();

    const requestLines = out.lines.filter((l) => l.includes('"request_id"'));
    assert.equal(requestLines.length, 2, out.lines.join('\n'));
    const raw = requestLines[0] as string;
    const line = JSON.parse(raw) as Record<string, unknown>;
    assert.equal(line.level, 30);
    assert.equal(typeof line.time, 'number');
    assert.equal(line.service, 'desk', "the base logger's bindings");
    assert.equal(line.region, 'eu', "the child's bindings");
    assert.equal(line.route, '/bots/:id');
    assert.equal(line.path, '/bots/7');
    assert.equal(line.status, 200);
    assert.equal(line.msg, 'request completed');
    for (const key of ['service', 'region', 'request_id', 'status', 'msg']) {
      assert.equal(raw.split(`"${key}":`).length, 2, `"${key}" appears once in ${raw}`);
    }
    // A field Fastify's logger has a serializer for is written through pino, serializer applied.
    const withRes = JSON.parse(requestLines[1] as string) as Record<string, unknown>;
    assert.deepEqual(withRes.res, { statusCode: 418 });
    assert.equal(withRes.route, '/teapot');
    assert.equal(viaPino, 1, 'only the line with a serialized field went through pino');
  } finally {
    await app.close();
  }
});

test("an overloadGuard given no logger logs its shedding through the node:http edge's logger", async () => {
  const out = capture();
  let enter: () => void = () => {};
  const entered = new Promise<void>((resolve) => {
    enter = resolve;
  });
  let finish: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const listener = withHangproof(
    async (_req, res) => {
      enter();
      await held;
      res.end('ok');
    },
    {
      deadlineMs: 5_000,
      logger: pino({ level: 'info' }, out.stream),
      admission: overloadGuard({ maxInFlight: 1, maxQueued: 0 }),
    },
  );
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as { port: number };
    const first = fetch(`http://127.0.0.1:${port}/slow`, { signal: AbortSignal.timeout(5_000) });
    await entered;
    const refused = await fetch(`http://127.0.0.1:${port}/slow`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(refused.status, 503);
    await refused.arrayBuffer();
    finish();
    await (await first).arrayBuffer();
    const shedding = out.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.event === LOG_EVENTS.loadShedding);
    assert.equal(shedding.length, 1, out.lines.join('\n'));
  } finally {
    finish();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('a Fastify without a logger (a no-op app.log) gets the request line on stdout, not nowhere', () => {
  const script = `import Fastify from 'fastify';
    import { hangproof } from 'hangproof/fastify';
    const app = Fastify();
    await app.register(hangproof, { deadlineMs: 1000 });
    app.get('/ping', async () => 'pong');
    await app.listen({ port: 0, host: '127.0.0.1' });
    const res = await fetch('http://127.0.0.1:' + app.server.address().port + '/ping', { signal: AbortSignal.timeout(5000) });
    await res.text();
    await app.close();`;
  const r = spawnSync(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script],
    {
      timeout: 20_000,
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, r.stderr);
  const line = r.stdout
    .split('\n')
    .filter((l) => l.includes('"request_id"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(line.length, 1, r.stdout);
  assert.equal(line[0]?.route, '/ping');
  assert.equal(line[0]?.status, 200);
});
