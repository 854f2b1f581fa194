/**
 * The NestJS example (NestJS on Express with hangproof/express) run as a user would run it: a fast
 * route answers with its request id, a hung route answers 504 REQUEST_TIMEOUT in the error shape
 * within its deadline, Nest's own 404 comes in the error shape, and SIGTERM stops it cleanly. The
 * Express page of docs/frameworks/ shows exactly this code.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { runExample } from '../run-example.ts';

const DEADLINE_MS = 2_000;
const SERVER = new URL('./server.ts', import.meta.url);

interface ErrorBody {
  error: { code: string; message: string; requestId: string };
}

test('the NestJS example is the code docs/frameworks/express.md shows', async () => {
  const code = await readFile(SERVER, 'utf8');
  const doc = await readFile(new URL('../../docs/frameworks/express.md', import.meta.url), 'utf8');
  const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.includes(code), 'a code block of docs/frameworks/express.md is examples/nestjs/server.ts');
});

test('the NestJS example answers a hung route with 504 in time and stops on SIGTERM', async () => {
  const example = await runExample(SERVER, {});
  try {
    const hello = await fetch(`${example.url}/hello`, { headers: { 'x-request-id': 'nest-hello-1' } });
    assert.equal(hello.status, 200);
    assert.equal(hello.headers.get('x-request-id'), 'nest-hello-1');
    assert.deepEqual(await hello.json(), { hello: 'world' });

    const started = performance.now();
    const hung = await fetch(`${example.url}/hang`);
    const elapsedMs = performance.now() - started;
    assert.equal(hung.status, 504);
    const body = (await hung.json()) as ErrorBody;
    assert.equal(body.error.code, 'REQUEST_TIMEOUT');
    assert.equal(body.error.requestId, hung.headers.get('x-request-id'));
    assert.ok(elapsedMs < DEADLINE_MS + 250, `answered at the deadline, took ${Math.round(elapsedMs)} ms`);

    const missing = await fetch(`${example.url}/nope`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as ErrorBody).error.code, 'NOT_FOUND');

    assert.equal(await example.stop(), 0);
  } finally {
    example.kill();
  }
});
