import type { StallFrame } from './stall-watchdog.js';

/** A stall frame as the stall log line writes it and the report reads it: `fn (url:line:column)`. */
export function stallFrameText(f: StallFrame): string {
  return `${f.functionName} (${f.url}:${f.line}:${f.column})`;
}
