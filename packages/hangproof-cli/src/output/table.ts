import Table from 'cli-table3';
import type { CliIo } from './cli-io.js';

/**
 * A table for humans. On a terminal it has borders; in a pipe it is plain aligned columns with
 * no colour codes, so `grep` and `awk` work on it.
 */
export function renderTable(io: CliIo, head: readonly string[], rows: readonly (readonly string[])[]): string {
  const table = io.isTTY
    ? new Table({ head: [...head], style: { head: ['cyan'], border: ['gray'] }, wordWrap: true })
    : new Table({
        head: [...head],
        chars: {
          top: '',
          'top-mid': '',
          'top-left': '',
          'top-right': '',
          bottom: '',
          'bottom-mid': '',
          'bottom-left': '',
          'bottom-right': '',
          left: '',
          'left-mid': '',
          mid: '',
          'mid-mid': '',
          right: '',
          'right-mid': '',
          middle: '  ',
        },
        style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
      });
  for (const r of rows) table.push([...r]);
  return table.toString();
}
