import { type ChildProcess, spawn } from 'node:child_process';

/** How to start and stop one child process of the cluster. */
export interface ManagedProcessOptions {
  /** Name in log lines. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Signal of a graceful stop. @default 'SIGTERM' */
  readonly stopSignal?: NodeJS.Signals;
  /** Time the graceful stop may take before SIGKILL, in ms. @default 10_000 */
  readonly stopTimeoutMs?: number;
  /** Receives each output line (stdout and stderr). @default discards them */
  readonly onLine?: (line: string) => void;
}

/** A running child: stopped gracefully, within a bound, then killed. */
export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** True once it exited. */
  readonly exited: boolean;
  /** Resolves with the exit code (or the signal name) when it exits. */
  readonly exit: Promise<number | string>;
  /** Graceful stop; SIGKILL after stopTimeoutMs. Resolves when it exited. */
  stop(): Promise<number | string>;
  /** SIGKILL now (a crash, for tests). Resolves when it exited. */
  kill(): Promise<number | string>;
}

/** Longest wait for a child's last output after it exited, in ms. */
const OUTPUT_DRAIN_MS = 1000;

/** Starts a child process whose exit is always awaited with a bound. Its output goes to onLine. */
export function startProcess(o: ManagedProcessOptions): ManagedProcess {
  const child = spawn(o.command, o.args, {
    env: o.env ?? process.env,
    cwd: o.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: Ctrl-C in the terminal reaches the launcher only, which then stops
    // the children in order instead of all of them at once.
    detached: true,
  });
  let exited = false;
  const exit = new Promise<number | string>((resolve) => {
    let late: NodeJS.Timeout | undefined;
    const settle = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (exited) return;
      exited = true;
      clearTimeout(late);
      resolve(code ?? signal ?? 'unknown');
    };
    // 'close' follows 'exit' once the pipes are drained, so what it wrote just before exiting (a
    // crash's stack, say) reaches onLine first. Bounded, because a grandchild that kept the pipes
    // open (an nginx worker) would hold 'close' back.
    child.once('close', settle);
    child.once('exit', (code, signal) => {
      late = setTimeout(() => settle(code, signal), OUTPUT_DRAIN_MS);
    });
    child.once('error', (err) => {
      exited = true;
      o.onLine?.(`${o.name}: ${err.message}`);
      resolve('spawn-error');
    });
  });
  const onLine = o.onLine ?? (() => {});
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      buffered += chunk;
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        onLine(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf('\n');
      }
      // A line without end is cut rather than buffered without bound.
      if (buffered.length > 64 * 1024) {
        onLine(buffered);
        buffered = '';
      }
    });
    stream?.on('end', () => {
      if (buffered !== '') onLine(buffered);
      buffered = '';
    });
  }
  const signal = (sig: NodeJS.Signals): void => {
    if (!exited) child.kill(sig);
  };
  let stopping: Promise<number | string> | undefined;
  return {
    name: o.name,
    pid: child.pid ?? -1,
    child,
    get exited() {
      return exited;
    },
    exit,
    stop() {
      stopping ??= (async () => {
        signal(o.stopSignal ?? 'SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((r) => {
          timer = setTimeout(() => r('late'), o.stopTimeoutMs ?? 10_000);
        });
        const first = await Promise.race([exit, late]);
        clearTimeout(timer);
        if (first !== 'late') return first;
        onLine(`${o.name}: did not stop within ${o.stopTimeoutMs ?? 10_000} ms, killing it`);
        signal('SIGKILL');
        return exit;
      })();
      return stopping;
    },
    kill() {
      signal('SIGKILL');
      return exit;
    },
  };
}
