#!/usr/bin/env node
/** The `hangproof` bin. All logic lives in program.ts; this only wires the process. */
import { runCli } from './program.js';

// `hangproof pg top | head` closes the pipe early: that is the reader's choice, not a crash.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const code = await runCli(process.argv.slice(2));
process.exitCode = code;
// Every wait in the CLI is bounded, but a socket a library forgot to close must not keep the
// process (and the operator's terminal) alive: exit shortly after the work is done.
setTimeout(() => process.exit(code), 1500).unref();
