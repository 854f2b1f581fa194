import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { startServerProcess } from '../lib/server-process.ts';
import { EDGE_SERVER } from '../suites/edge.ts';

/** The floors send a refusal's bytes: a client must read them as the refusal hangproof sends. */
async function refusalOf(
  scenario: string,
): Promise<{ status: number; id: string | null; retryAfter: string | null; body: unknown }> {
  const server = await startServerProcess(EDGE_SERVER, { BENCH_SCENARIO: scenario });
  try {
    const res = await fetch(server.url, { signal: AbortSignal.timeout(5_000) });
    const headers = res.headers;
    return {
      status: res.status,
      id: headers.get('x-request-id'),
      retryAfter: headers.get('retry-after'),
      body: await res.json(),
    };
  } finally {
    await server.stop();
  }
}

for (const scenario of ['net-refusal', 'http-refusal']) {
  test(`${scenario} answers a refusal a client reads whole: 503, Retry-After, the id in header and body`, async () => {
    const { status, id, retryAfter, body } = await refusalOf(scenario);
    assert.equal(status, 503);
    assert.equal(retryAfter, '2');
    assert.match(id ?? '', /^00000000-0000-8000-8000-[0-9a-f]{12}$/);
    assert.deepEqual(body, {
      error: {
        code: 'OVERLOADED',
        message: (body as { error: { message: string } }).error.message,
        requestId: id,
        reason: 'concurrency',
      },
    });
  });
}

test('net-refusal answers each request once, when a request ends in the next read and two share a read', async () => {
  const server = await startServerProcess(EDGE_SERVER, { BENCH_SCENARIO: 'net-refusal' });
  const { port } = new URL(server.url);
  const socket = connect(Number(port), '127.0.0.1');
  try {
    let received = '';
    const answers = (): number => received.split('HTTP/1.1 503 ').length - 1;
    const twoAnswers = new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk) => {
        received += chunk.toString('latin1');
        if (answers() >= 2) resolve();
      });
      socket.on('error', reject);
      setTimeout(() => reject(new Error(`${answers()} answers within 5 s`)), 5_000).unref();
    });
    const request = 'GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    // The first request's end split over two writes, the second request in the second write. The
    // pause is no wait for a result: it lets loopback deliver the first part on its own.
    socket.write(request.slice(0, -2));
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.write(`\r\n${request}`);
    await twoAnswers;
    assert.equal(answers(), 2);
  } finally {
    socket.destroy();
    await server.stop();
  }
});
