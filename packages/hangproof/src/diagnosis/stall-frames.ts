/**
 * Picks the frame that names the blocking code in an event-loop stall stack. The innermost frames
 * are often Node internals the loop calls (`now (node:internal/perf/utils...)`) or anonymous
 * wrappers; the first frame with a name outside `node:` is the code to move off the loop.
 */
export function blockingFrame(stack: readonly string[]): string | undefined {
  for (const f of stack) {
    const m = /^(.*?) \((.*):(\d+):(\d+)\)$/.exec(f);
    const fn = m?.[1] ?? f;
    const url = m?.[2] ?? '';
    if (url.startsWith('node:') || url === '' || fn === '' || fn === '(anonymous)') continue;
    const file = url.split('/').at(-1) ?? url;
    return `${fn} (${file}:${m?.[3]})`;
  }
  return stack[0];
}
