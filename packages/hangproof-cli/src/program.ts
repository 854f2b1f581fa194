/**
 * The `hangproof` command tree. `runCli` is the whole CLI as a function (argv in, exit code out),
 * so tests can call it in-process as well as through the bin.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { registerChaos } from './commands/chaos.js';
import { registerDoctor } from './commands/doctor.js';
import { registerLoad } from './commands/load.js';
import { registerPg } from './commands/pg.js';
import { registerReport } from './commands/report.js';
import { CliError, EXIT } from './output/cli-error.js';
import { type CliIo, processIo } from './output/cli-io.js';

/**
 * The package's own version. package.json sits one folder above both src/ (tests, tsx) and dist/
 * (the installed bin), so one relative URL finds it in either layout.
 */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  const program = new Command('hangproof')
    .description('Find why a Node.js API on Postgres hangs, and prove it no longer does.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .exitOverride()
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 findings or a broken promise, 2 usage or connection error.
Docs: docs/cli.md (commands) and docs/playbooks.md (what to run during an incident).`,
    );
  registerDoctor(program, io, setExit);
  registerPg(program, io, setExit);
  registerLoad(program, io, setExit);
  registerChaos(program, io, setExit);
  registerReport(program, io, setExit);
  // Subcommands inherit the output and exit behaviour.
  for (const c of allCommands(program)) c.exitOverride().configureOutput(program.configureOutput());
  return program;
}

function allCommands(c: Command): Command[] {
  return c.commands.flatMap((s) => [s, ...allCommands(s)]);
}

/** Runs the CLI with `argv` (without node and script). Never throws; returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  let code: number = EXIT.OK;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // `commander.help` is help shown because no command was given: a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.OK;
      return EXIT.USAGE;
    }
    const e =
      err instanceof CliError
        ? err
        : new CliError(
            'INTERNAL',
            `unexpected error: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
          );
    io.stderr.write(`hangproof: ${e.message}\n`);
    if (argv.includes('--json'))
      io.stdout.write(`${JSON.stringify({ error: { code: e.code, message: e.message } })}\n`);
    if (e.code === 'INTERNAL' && io.env.HANGPROOF_DEBUG) io.stderr.write(`${(err as Error).stack}\n`);
    return e.exitCode;
  }
}
