import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteStringSlots } from '../../src/observe/byte-string-slots.ts';

test('ids kept as bytes come back as the same strings, each slot on its own', () => {
  const slots = new ByteStringSlots(3, 128);
  const made = '2d919932-a052-842f-a695-000000000004';
  const fromHeader = `${'a'.repeat(127)}z`;
  slots.set(0, made);
  slots.set(1, fromHeader);
  assert.equal(slots.get(0), made);
  assert.equal(slots.get(1), fromHeader);
  assert.equal(slots.get(2), undefined, 'a slot never written is empty');
  slots.set(0, 'short');
  assert.equal(slots.get(0), 'short', 'a shorter string overwrites a longer one');
  slots.set(1, undefined);
  assert.equal(slots.get(1), undefined);
});

test('a string too long for a slot or beyond Latin-1 is kept as it is', () => {
  const slots = new ByteStringSlots(2, 8);
  slots.set(0, 'nightly-report-job');
  slots.set(1, 'sync-€-prices');
  assert.equal(slots.get(0), 'nightly-report-job');
  assert.equal(slots.get(1), 'sync-€-prices');
  slots.set(1, 'café');
  assert.equal(slots.get(1), 'café', 'Latin-1 fits in bytes');
});
