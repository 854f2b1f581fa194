import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SlottedSet } from '../../src/core/slotted-set.ts';

interface Member {
  readonly name: string;
}

const names = (set: SlottedSet<Member>): string[] => [...set].map((m) => m.name).sort();

test('members come and go in any order, and the set holds exactly those added and not deleted', () => {
  const set = new SlottedSet<Member>();
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((name) => ({ name })) as [Member, Member, Member, Member];
  for (const m of [a, b, c, d]) set.add(m);
  set.add(b);
  assert.equal(set.size, 4);
  set.delete(b);
  set.delete(b);
  assert.deepEqual(names(set), ['a', 'c', 'd']);
  assert.equal(set.has(b), false);
  set.delete(a);
  set.add(b);
  assert.deepEqual(names(set), ['b', 'c', 'd']);
  for (const m of [b, c, d]) assert.equal(set.has(m), true);
  // A member deleted from the middle leaves no hole: the others are all still found.
  set.delete(c);
  assert.deepEqual(names(set), ['b', 'd']);
  assert.equal(set.has(d), true);
});

test('one object can be in two sets at once without one disturbing the other', () => {
  const held = new SlottedSet<Member>();
  const running = new SlottedSet<Member>();
  const [a, b] = [{ name: 'a' }, { name: 'b' }];
  held.add(a);
  held.add(b);
  running.add(b);
  held.delete(a);
  assert.deepEqual(names(held), ['b']);
  assert.deepEqual(names(running), ['b']);
  running.delete(b);
  assert.equal(held.has(b), true);
  assert.equal(running.has(b), false);
});

test('forEach visits every member once, even as it deletes the ones it visits', () => {
  const set = new SlottedSet<Member>();
  const members = Array.from({ length: 10 }, (_, i) => ({ name: `m${i}` }));
  for (const m of members) set.add(m);
  const visited: string[] = [];
  set.forEach((m) => {
    visited.push(m.name);
    if (Number(m.name.slice(1)) % 2 === 0) set.delete(m);
  });
  assert.deepEqual(visited.sort(), members.map((m) => m.name).sort());
  assert.deepEqual(names(set), ['m1', 'm3', 'm5', 'm7', 'm9']);
});
