/**
 * KEEPALIVE_BELOW_PROXY_IDLE: each server must keep idle connections open longer than the proxy in
 * front of it, or the proxy reuses a connection the server is closing and the client gets a 502.
 */
import { formatMs } from '../../output/duration.js';
import { type Finding, finding } from '../findings.js';
import type { AuditInput, LadderLayer, LadderRows } from './ladder-rows.js';
import { label } from './layer-math.js';

function keepalivePair(server: LadderLayer | undefined, proxy: LadderLayer | undefined): Finding[] {
  if (!server || !proxy || proxy.valueMs === null) return [];
  if (server.valueMs !== null && server.valueMs > proxy.valueMs) return [];
  const hint =
    server.id === 'server.keepAliveTimeout' ? ' (hangproof serverOptions keepAliveTimeoutMs, default 72 s)' : '';
  return [
    finding(
      'KEEPALIVE_BELOW_PROXY_IDLE',
      [proxy.id, server.id],
      `${label(server)} (${formatMs(server.valueMs)}) is not above ${label(proxy)} (${formatMs(proxy.valueMs)})`,
      `set ${label(server)} above the proxy's idle timeout, e.g. ${formatMs(proxy.valueMs + 5000)}${hint}`,
    ),
  ];
}

export function keepaliveBelowProxyIdle(r: LadderRows, input: AuditInput): Finding[] {
  // Without nginx, the gateway talks to the service directly.
  return [
    ...keepalivePair(r.keepAlive, r.upstreamIdle ?? (input.nginx ? undefined : r.gatewayIdle)),
    ...keepalivePair(r.nginxKeepalive, r.gatewayIdle),
  ];
}
