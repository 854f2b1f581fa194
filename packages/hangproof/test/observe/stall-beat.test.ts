import assert from 'node:assert/strict';
import { test } from 'node:test';
import { beatAgeMs, toBeat } from '../../src/observe/stall-watchdog-protocol.js';

test("a beat's age is whole ms of the main thread's clock", () => {
  assert.equal(beatAgeMs(toBeat(1000.7), 1250.2), 250);
  assert.equal(beatAgeMs(toBeat(1250.2), 1250.9), 0);
});

test("a beat's age stays right where the stored Int32 wraps (after 24.8 and 49.7 days of uptime)", () => {
  const day = 86_400_000;
  for (const beatAt of [2 ** 31 - 10, 2 ** 32 - 5, 60 * day + 0.5]) {
    assert.equal(beatAgeMs(toBeat(beatAt), beatAt + 25), 25, `beat at ${beatAt} ms`);
    assert.equal(beatAgeMs(toBeat(beatAt), beatAt + 300_000), 300_000, `beat at ${beatAt} ms, 5 min later`);
  }
});
