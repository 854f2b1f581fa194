/**
 * The log contract between the library (the writer) and `hangproof report` (the reader): both use
 * the library's LOG_MESSAGES and LOG_EVENTS. These tests fail when one side stops doing so: a text
 * the reader does not classify, or a writer that spells a text out instead of using the constant
 * (which would let it drift from what the reader matches).
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LOG_EVENTS, LOG_MESSAGES, REQUEST_LOG_MESSAGES } from 'hangproof';
import { toLogEvent } from 'hangproof/diagnosis';

const librarySrc = fileURLToPath(new URL('../../hangproof/src/', import.meta.url));

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sourceFiles(full)));
    else if (e.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

describe('the log contract', () => {
  test('the report classifies a line with each message the library writes', () => {
    for (const [name, msg] of Object.entries(LOG_MESSAGES)) {
      const line = { time: Date.now(), level: 40, msg, dependency: 'quotes', pool: 'postgres' };
      assert.notEqual(toLogEvent(line), undefined, `LOG_MESSAGES.${name} ("${msg}") is not read by the report`);
    }
  });

  test('the report reads a request line whatever way it ended, slim or detailed', () => {
    for (const [name, msg] of Object.entries(REQUEST_LOG_MESSAGES)) {
      const line = { time: Date.now(), level: 30, msg, request_id: 'r1', route: '/x', status: 200, db_ms: 3.5 };
      const e = toLogEvent(line);
      assert.equal(e?.type, 'request', `REQUEST_LOG_MESSAGES.${name} ("${msg}") is not read as a request`);
      assert.equal(e?.type === 'request' ? e.spans[0]?.durMs : undefined, 3.5, 'the db total becomes a span');
    }
  });

  test('the report classifies a line with each structured event the library writes', () => {
    for (const [name, event] of Object.entries(LOG_EVENTS)) {
      const line = { time: Date.now(), level: 40, event, msg: 'any text' };
      assert.notEqual(toLogEvent(line), undefined, `LOG_EVENTS.${name} ("${event}") is not read by the report`);
    }
  });

  test('no library source spells out a contract text instead of using the constant', async () => {
    const texts = [
      ...Object.values(LOG_MESSAGES),
      ...Object.values(REQUEST_LOG_MESSAGES),
      ...Object.values(LOG_EVENTS),
    ];
    const offenders: string[] = [];
    for (const file of await sourceFiles(librarySrc)) {
      // diagnosis/ is the reader, and two of its cause kinds share their names with events.
      if (file.endsWith('log-events.ts') || file.includes(`${sep}diagnosis${sep}`)) continue;
      const source = await readFile(file, 'utf8');
      for (const text of texts) {
        if (source.includes(`'${text}'`) || source.includes(`"${text}"`) || source.includes(`\`${text}\``)) {
          offenders.push(`${file.slice(librarySrc.length)}: ${text}`);
        }
      }
    }
    assert.deepEqual(offenders, []);
  });
});
