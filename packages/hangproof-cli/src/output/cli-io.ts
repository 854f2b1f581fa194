import { styleText } from 'node:util';

/** Where a command writes, and whether a human is watching (colours, progress line, prompts). */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly stdin: NodeJS.ReadableStream;
  /** stdout is a terminal: colours and a live progress line are allowed. */
  readonly isTTY: boolean;
  /** stdin is a terminal: a confirmation prompt can be answered. */
  readonly stdinIsTTY: boolean;
  readonly env: NodeJS.ProcessEnv;
}

/** The process's own streams. Colours are off when NO_COLOR is set or stdout is not a terminal. */
export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    isTTY: process.stdout.isTTY === true && process.env.NO_COLOR === undefined,
    stdinIsTTY: process.stdin.isTTY === true,
    env: process.env,
  };
}

type Style = 'red' | 'green' | 'yellow' | 'cyan' | 'gray' | 'bold' | 'dim';

/** Colour helpers that return plain text unless the output is a terminal. */
export type Painter = (style: Style, text: string) => string;

export function painter(io: CliIo): Painter {
  return (style, text) => (io.isTTY ? styleText(style, text) : text);
}

/** Writes one line to stdout. */
export function println(io: CliIo, line = ''): void {
  io.stdout.write(`${line}\n`);
}

/** Writes a value as pretty JSON on stdout (the `--json` contract: one document, nothing else). */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
