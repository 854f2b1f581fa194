import { CliError } from '../output/cli-error.js';
import type { Fault, FaultContext } from './fault.js';

/**
 * SIGSTOP / SIGCONT of one local process the user named with `--pid`: a frozen Postgres backend,
 * provider or worker, as seen from the service. SIGCONT is sent on remove, again on dispose, and
 * from an exit handler, so an error or Ctrl-C never leaves the process stopped (only SIGKILL of
 * this CLI can; then run `kill -CONT <pid>`).
 */
export function pauseFault(ctx: FaultContext): Fault {
  const pid = ctx.pid;
  if (pid === undefined) throw new CliError('USAGE', 'a pause fault needs --pid <pid> of the process to pause');
  if (!Number.isInteger(pid) || pid <= 1)
    throw new CliError('USAGE', `--pid must be a process id above 1, received ${pid}`);
  if (pid === process.pid || pid === process.ppid)
    throw new CliError('USAGE', `--pid ${pid} is this command or its parent; name another process`);
  let stopped = false;
  const resume = (): void => {
    if (!stopped) return;
    stopped = false;
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // The process is gone: nothing is left stopped.
    }
  };
  return {
    kind: 'pause',
    label: `SIGSTOP pid ${pid} (SIGCONT after the hold)`,
    async prepare() {
      try {
        process.kill(pid, 0);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new CliError(
          'FAULT_FAILED',
          code === 'EPERM' ? `not allowed to signal pid ${pid}` : `no process with pid ${pid}`,
        );
      }
      process.once('exit', resume);
    },
    async inject() {
      stopped = true;
      try {
        process.kill(pid, 'SIGSTOP');
      } catch (err) {
        stopped = false;
        throw new CliError('FAULT_FAILED', `SIGSTOP of pid ${pid} failed: ${(err as NodeJS.ErrnoException).code}`);
      }
    },
    async remove() {
      resume();
    },
    async dispose() {
      resume();
      process.removeListener('exit', resume);
    },
    detail: () => ({ pid }),
  };
}
