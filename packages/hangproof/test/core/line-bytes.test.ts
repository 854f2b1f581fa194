import assert from 'node:assert/strict';
import { test } from 'node:test';
import { putBytes, putInt, putJsonString, putTenths } from '../../src/core/line-bytes.ts';

/** What one writer puts into a fresh buffer, as text. */
function written(put: (buf: Buffer, off: number) => number): string {
  const buf = Buffer.alloc(1024, 0x2a);
  // An offset other than 0, so a writer that ignores it is caught.
  const end = put(buf, 3);
  return buf.toString('utf8', 3, end);
}

test('putInt writes what JSON writes, across 31 bits and an epoch in ms', () => {
  const values = [
    0,
    7,
    9,
    10,
    99,
    100,
    2_500,
    2 ** 31 - 2,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 35,
    99_999_999_999,
    1_764_950_400_123,
    100_000_000_000_001,
  ];
  for (const n of [...values, Number.MAX_SAFE_INTEGER])
    assert.equal(
      written((b, o) => putInt(b, o, n)),
      JSON.stringify(n),
    );
  // Not a non-negative safe integer: written as JSON would write it, never as garbled digits.
  for (const n of [2_500.5, -3, Number.NaN, 2 ** 60])
    assert.equal(
      written((b, o) => putInt(b, o, n)),
      JSON.stringify(n),
    );
});

test('putTenths writes the value rounded to a tenth, as JSON writes it', () => {
  for (const ms of [0, 0.04, 0.05, 1.25, 12.35, 99_999.99, 1_234_567.8]) {
    assert.equal(
      written((b, o) => putTenths(b, o, ms)),
      JSON.stringify(Math.round(ms * 10) / 10),
    );
  }
});

test('putJsonString escapes as JSON.stringify does, and copies plain ASCII as it is', () => {
  for (const s of [
    '',
    'r-1',
    '/bots/42?x=1',
    'a"b',
    'back\\slash',
    'tab\there',
    'ünïcode ✓',
    '\u0000',
    `${'x'.repeat(40)}"`,
  ]) {
    assert.equal(
      written((b, o) => putJsonString(b, o, s)),
      JSON.stringify(s),
    );
  }
});

test('putBytes copies prepared bytes at the offset', () => {
  assert.equal(
    written((b, o) => putBytes(b, o, Buffer.from('{"level":30 ✓'))),
    '{"level":30 ✓',
  );
});
