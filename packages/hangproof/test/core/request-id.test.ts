import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { isValidRequestId, resolveRequestId } from '../../src/core/request-id.js';

/** RFC 9562: 8-4-4-4-12 hex, version nibble 8, variant bits 10. */
const UUID_V8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request ids', () => {
  test('a new id is a version 8 UUID, unique and increasing within the process', () => {
    const ids = Array.from({ length: 10_000 }, () => resolveRequestId(undefined));
    for (const id of ids) assert.match(id, UUID_V8);
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual([...ids].sort(), ids, 'ids sort by arrival');
    assert.ok(isValidRequestId(ids[0]), 'a new id is itself a valid incoming id');
  });

  test('two processes draw different ids', () => {
    const script = `import('${new URL('../../src/core/request-id.ts', import.meta.url).href}').then((m) => console.log(m.resolveRequestId(undefined)))`;
    const draw = (): string => {
      const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.equal(child.status, 0, child.stderr);
      return child.stdout.trim();
    };
    const [a, b] = [draw(), draw()];
    assert.match(a, UUID_V8);
    assert.notEqual(a, b);
  });

  test("the caller's valid X-Request-ID is kept; an invalid or repeated header is replaced", () => {
    assert.equal(resolveRequestId('trace-42:abc.DEF_1'), 'trace-42:abc.DEF_1');
    assert.match(resolveRequestId('has space'), UUID_V8);
    assert.match(resolveRequestId('x'.repeat(129)), UUID_V8);
    assert.match(resolveRequestId(['a', 'b']), UUID_V8);
  });
});
