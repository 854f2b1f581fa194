#!/usr/bin/env node
// The `hangproof` bin. This file is committed, not built, so npm can link it when the package is
// installed, before any build has run (a bin pointing into dist/ is silently not linked in a fresh
// clone). It only loads the compiled CLI, or says how to build it.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/main.js', import.meta.url);
if (existsSync(entry)) {
  await import(entry.href);
} else {
  process.stderr.write('hangproof: the CLI is not built yet (dist/main.js is missing); run `npm run build`.\n');
  process.exitCode = 2;
}
