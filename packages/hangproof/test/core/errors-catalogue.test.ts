import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { CODES, errorBody, HangproofError, isHangproofError } from 'hangproof';

const doc = await readFile(new URL('../../../../docs/errors.md', import.meta.url), 'utf8');
const documented = new Map(
  [...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1] as string, Number(m[2])] as const),
);

test('every code in the catalogue has a row in docs/errors.md with the same status, and no row is stale', () => {
  for (const [code, { status }] of Object.entries(CODES)) {
    assert.equal(documented.get(code), status, `docs/errors.md row for ${code}`);
  }
  assert.deepEqual([...documented.keys()].sort(), Object.keys(CODES).sort());
});

test('an error body carries code, message, request ID and safe details only', () => {
  const err = new HangproofError('DEPENDENCY_TIMEOUT', {
    details: { dependency: 'postgres', phase: 'query' },
    cause: new Error('canceling statement due to statement timeout: SELECT secret'),
  });
  const body = errorBody(err, 'req-1');
  assert.deepEqual(body, {
    error: {
      code: 'DEPENDENCY_TIMEOUT',
      message: err.message,
      requestId: 'req-1',
      dependency: 'postgres',
      phase: 'query',
    },
  });
  assert.doesNotMatch(JSON.stringify(body), /SELECT|secret/);
});

test('details cannot overwrite the code, message or request ID', () => {
  const err = new HangproofError('NOT_FOUND', { details: { code: 'INTERNAL', requestId: 'spoofed' } });
  const body = errorBody(err, 'real');
  assert.equal(body.error.code, 'NOT_FOUND');
  assert.equal(body.error.requestId, 'real');
});

test('the brand is recognised across copies of the library', () => {
  const foreign = Object.assign(new Error('x'), { [Symbol.for('hangproof.error')]: true, code: 'OVERLOADED' });
  assert.ok(isHangproofError(foreign));
  assert.ok(!isHangproofError(new Error('plain')));
});
