import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DOCS_IMAGES = fileURLToPath(new URL('../../../../docs/images/', import.meta.url));

/**
 * Where a browser test saves a screenshot: docs/images when HANGPROOF_SCREENSHOTS=docs (to refresh
 * the pictures the docs show), otherwise a temporary folder, so that a test run leaves the working
 * tree as it found it.
 */
export function screenshotPath(name: string): string {
  if (process.env.HANGPROOF_SCREENSHOTS === 'docs') return join(DOCS_IMAGES, name);
  const dir = join(tmpdir(), 'hangproof-screenshots');
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
