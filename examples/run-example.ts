/** Runs an example as a user would (`node --import tsx server.ts`) and waits for its ready line. */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/** Longest wait for the ready line, and for the exit after SIGTERM, in ms. */
const READY_MS = 15_000;
const EXIT_MS = 10_000;

export interface RunningExample {
  /** The URL the example printed once it listened. */
  readonly url: string;
  readonly child: ChildProcess;
  /** Sends SIGTERM and resolves with the exit code, or 'timeout' when it did not exit in time. */
  stop(): Promise<number | string | null>;
  /** Kills it if it is still running (for `finally`). */
  kill(): void;
}

export async function runExample(server: URL, env: Readonly<Record<string, string>>): Promise<RunningExample> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', fileURLToPath(server)], {
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  try {
    // The ready line: the URL the example prints once it listens.
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no URL printed within ${READY_MS} ms; got ${out}`)), READY_MS);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the example exited (${code}) before printing its URL; got ${out}`));
      });
      child.stdout?.on('data', (c: Buffer) => {
        out += c;
        const m = /http:\/\/\S+/.exec(out);
        if (m !== null) {
          clearTimeout(timer);
          resolve(m[0]);
        }
      });
    });
    return {
      url,
      child,
      kill,
      async stop() {
        child.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const [code] = await Promise.race([
          once(child, 'exit') as Promise<[number | null]>,
          new Promise<[string]>((resolve) => {
            timer = setTimeout(() => resolve(['timeout']), EXIT_MS);
          }),
        ]);
        clearTimeout(timer);
        return code;
      },
    };
  } catch (err) {
    kill();
    throw err;
  }
}
