import type { CliIo } from './cli-io.js';

/** A live status line, redrawn in place on a terminal; silent otherwise (logs stay clean). */
export interface ProgressLine {
  update(text: string): void;
  /** Erases the line. Safe to call twice. */
  done(): void;
}

const SILENT: ProgressLine = { update() {}, done() {} };

/**
 * Shows a progress line on stderr when stdout is a terminal. It appears only after `delayMs`, so a
 * command that finishes quickly never flickers.
 */
export function progressLine(io: CliIo, delayMs = 1000): ProgressLine {
  if (!io.isTTY) return SILENT;
  const startedAt = performance.now();
  let shown = false;
  return {
    update(text) {
      if (performance.now() - startedAt < delayMs) return;
      shown = true;
      io.stderr.write(`\r\x1b[2K${text}`);
    },
    done() {
      if (shown) io.stderr.write('\r\x1b[2K');
      shown = false;
    },
  };
}
