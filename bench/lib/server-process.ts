import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';

/** A benchmark server in its own process, pinned to one core when taskset exists. */
export interface ServerProcess {
  readonly url: string;
  /** Starts a CPU measurement window in the server. */
  cpuStart(): Promise<void>;
  /** Ends it: server CPU time (user+system) in µs since cpuStart. */
  cpuStop(): Promise<number>;
  /** Sends `{ cmd }` and resolves with the server's answer of type `replyType` (a preload's command). */
  call<T>(cmd: string, replyType: string): Promise<T>;
  stop(): Promise<void>;
}

export const SERVER_CORE = '1';
export const LOAD_CORE = '0';
export const hasTaskset = existsSync('/usr/bin/taskset');

/** Wraps a command so it runs on one core (server and load generator must not share one). */
export function pinned(core: string, cmd: string, args: string[]): [string, string[]] {
  return hasTaskset ? ['taskset', ['-c', core, cmd, ...args]] : [cmd, args];
}

const STARTUP_TIMEOUT_MS = 30_000;
const IPC_TIMEOUT_MS = 5_000;
const CALL_TIMEOUT_MS = 30_000;

export async function startServerProcess(
  file: string,
  env: Record<string, string>,
  nodePath: string = process.execPath,
  nodeArgs: readonly string[] = [],
): Promise<ServerProcess> {
  // Plain node on a .mjs server: the built library runs as a user's service would run it.
  const [cmd, args] = pinned(SERVER_CORE, nodePath, [...nodeArgs, file]);
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const ready = await request<{ url: string }>(child, undefined, 'ready', STARTUP_TIMEOUT_MS);
  return {
    url: ready.url,
    cpuStart: () => request(child, { cmd: 'cpu-start' }, 'cpu-started', IPC_TIMEOUT_MS).then(() => {}),
    cpuStop: () =>
      request<{ cpuMicros: number }>(child, { cmd: 'cpu-stop' }, 'cpu', IPC_TIMEOUT_MS).then((m) => m.cpuMicros),
    // A preload's answer can take a while to build (a heap profile of millions of samples).
    call: <T>(cmd: string, replyType: string) => request<T>(child, { cmd }, replyType, CALL_TIMEOUT_MS),
    async stop() {
      child.kill('SIGKILL');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

/**
 * Sends `message` to a bench server (none: only waits) and resolves with its first message of
 * type `type`; rejects when `timeoutMs` passes or the server exits first.
 */
export async function request<T>(
  child: ChildProcess,
  message: object | undefined,
  type: string,
  timeoutMs: number,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`bench server did not answer '${type}' within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (m: { type?: string }): void => {
      if (m.type !== type) return;
      cleanup();
      resolve(m as T);
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`bench server exited with ${code}`));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
    if (message !== undefined) child.send(message);
  });
}
