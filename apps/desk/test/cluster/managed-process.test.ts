import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startProcess } from '../../src/cluster/managed-process.js';

test('what a child writes just before it crashes reaches onLine before its exit is reported', async () => {
  // Many lines and a last one without a newline: the tail of a crash's stack trace. The child
  // ends with an exit code and no process.exit(), so it has written everything before it exits
  // (process.exit() may drop writes still queued on a pipe, as Node 24 does): what is under test
  // is that the manager delivers all of it before reporting the exit.
  const script = `
    for (let i = 0; i < 200; i++) process.stderr.write('stack line ' + i + '\\n');
    process.stdout.write('last words without a newline');
    process.exitCode = 3;
  `;
  for (let run = 0; run < 5; run++) {
    const lines: string[] = [];
    const proc = startProcess({
      name: 'crasher',
      command: process.execPath,
      args: ['-e', script],
      onLine: (l) => lines.push(l),
    });
    const code = await proc.exit;
    assert.equal(code, 3);
    assert.equal(proc.exited, true);
    assert.equal(lines.filter((l) => l.startsWith('stack line ')).length, 200, `run ${run}: every line`);
    assert.ok(lines.includes('last words without a newline'), `run ${run}: the unterminated last line`);
  }
});

test('a child whose grandchild keeps the output pipes open is still reported as exited', async () => {
  // The grandchild inherits stdout and outlives its parent by 10 s; the exit must not wait for it.
  const script = `
    const { spawn } = require('node:child_process');
    spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'], { stdio: 'inherit', detached: true }).unref();
    process.exit(0);
  `;
  const proc = startProcess({ name: 'parent', command: process.execPath, args: ['-e', script] });
  const t0 = performance.now();
  assert.equal(await proc.exit, 0);
  assert.ok(performance.now() - t0 < 5000, `exit reported after ${Math.round(performance.now() - t0)} ms`);
});
