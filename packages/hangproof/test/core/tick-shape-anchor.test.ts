import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ANCHOR_URL = new URL('../../src/core/tick-shape-anchor.ts', import.meta.url).href;

/** Runs `body` as an ES module in a fresh Node with the library's sources; returns its last line, parsed. */
async function inFreshNode<T>(body: string, flags: readonly string[] = []): Promise<T> {
  const { stdout } = await run(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', ...flags, '--input-type=module', '-e', body],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? 'null') as T;
}

describe('the tick shape anchor', () => {
  test('process.nextTick stays cheap through full collections once the library is loaded', async () => {
    // Without the anchor, each full collection with no tick alive gave V8's feedback for Node's
    // tick literal one more shape; after a few, every nextTick cost 250-800 ns instead of 30-40.
    const { warm, after } = await inFreshNode<{ warm: number; after: number[] }>(
      `
      await import('hangproof');
      const noop = () => {};
      const turn = () => new Promise((resolve) => setImmediate(resolve));
      const tickNs = () => {
        let least = Infinity;
        for (let batch = 0; batch < 20; batch++) {
          const started = process.hrtime.bigint();
          for (let i = 0; i < 200; i++) process.nextTick(noop);
          least = Math.min(least, Number(process.hrtime.bigint() - started) / 200);
        }
        return least;
      };
      for (let i = 0; i < 40; i++) { tickNs(); await turn(); }
      const warm = tickNs();
      await turn();
      const after = [];
      for (let i = 0; i < 20; i++) { globalThis.gc(); await turn(); after.push(tickNs()); await turn(); }
      console.log(JSON.stringify({ warm, after }));
      `,
      ['--expose-gc'],
    );
    const late = after.slice(-6).sort((a, b) => a - b);
    const median = late[3] ?? Number.NaN;
    assert.ok(
      median < Math.max(4 * warm, warm + 150),
      `one nextTick cost ${Math.round(warm)} ns warm and ${after.map(Math.round).join(', ')} ns after full collections`,
    );
  });

  test('every entry point that carries request contexts anchors a tick when it is loaded', async () => {
    const entries = ['hangproof', 'fastify', 'http', 'express', 'hono', 'pg', 'deps', 'observe'].map((e) =>
      e === 'hangproof' ? e : `hangproof/${e}`,
    );
    const kept = await Promise.all(
      entries.map((entry) =>
        inFreshNode<string[] | null>(
          `
          await import('${entry}');
          await new Promise((resolve) => setImmediate(resolve));
          const { anchoredTick } = await import('${ANCHOR_URL}');
          const tick = anchoredTick();
          console.log(JSON.stringify(tick === undefined ? null : Object.keys(tick)));
          `,
        ),
      ),
    );
    entries.forEach((entry, i) => {
      assert.deepEqual(kept[i], ['callback', 'args'], `${entry}: the anchor holds one of Node's tick objects`);
    });
  });
});
