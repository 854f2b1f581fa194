import { isLoopbackHost } from '../load/loopback.js';
import { CliError } from '../output/cli-error.js';
import type { Fault, FaultContext } from './fault.js';
import { FaultProxy, parseHostPort } from './fault-proxy.js';
import type { ProxyFaultSpec } from './scenario.js';

/**
 * The proxy fault: the proxy forwards from `prepare` on (the service is pointed at it), and
 * misbehaves only during the hold. It stops last, after the post-run checks.
 */
export function proxyFault(spec: ProxyFaultSpec, ctx: FaultContext): Fault {
  let upstream: { host: string; port: number };
  try {
    upstream = parseHostPort(spec.upstream ?? '');
  } catch (err) {
    throw new CliError('USAGE', `--upstream: ${(err as Error).message}`);
  }
  if (!ctx.allowRemote && !isLoopbackHost(upstream.host))
    throw new CliError('REMOTE_TARGET', `upstream ${upstream.host} is not a loopback address; pass --allow-remote`);
  const proxy = new FaultProxy({
    listenPort: spec.listenPort ?? 0,
    upstreamHost: upstream.host,
    upstreamPort: upstream.port,
  });
  const what = spec.mode === 'latency' ? `latency +${spec.latencyMs ?? 0} ms each way` : spec.mode;
  return {
    kind: 'proxy',
    label: `proxy 127.0.0.1:${spec.listenPort} -> ${upstream.host}:${upstream.port}: ${what}`,
    async prepare() {
      try {
        await proxy.listen();
      } catch (err) {
        throw new CliError(
          'FAULT_FAILED',
          `the proxy cannot listen on 127.0.0.1:${spec.listenPort}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        );
      }
    },
    async inject() {
      proxy.setMode(spec.mode, spec.latencyMs ?? 0);
    },
    async remove() {
      proxy.setMode('pass');
    },
    async dispose() {
      await proxy.close().catch(() => {});
    },
    detail: () => ({ ...proxy.stats }),
  };
}
