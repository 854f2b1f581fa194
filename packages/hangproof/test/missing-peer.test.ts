import assert from 'node:assert/strict';
import { test } from 'node:test';
import { importOptionalPeers } from '../src/missing-peer.js';

test('a feature whose optional peer is not installed fails with the package and the install command', async () => {
  // A name held in a variable: the type checker must not look for it.
  const missing = 'hangproof-package-that-is-not-installed';
  await assert.rejects(
    importOptionalPeers('the exporter', [missing], () => import(missing)),
    (err: Error) => {
      assert.match(
        err.message,
        /^the exporter needs the optional peer dependency hangproof-package-that-is-not-installed/,
      );
      assert.match(err.message, /npm install hangproof-package-that-is-not-installed$/);
      assert.equal((err.cause as { code?: string }).code, 'ERR_MODULE_NOT_FOUND');
      return true;
    },
  );
});

test('an error other than a missing package passes through unchanged', async () => {
  const broken = new TypeError('the package itself failed');
  await assert.rejects(
    importOptionalPeers('the exporter', ['some-package'], () => Promise.reject(broken)),
    (err) => err === broken,
  );
});
