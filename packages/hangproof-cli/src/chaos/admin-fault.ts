import { CliError, describeNetworkError } from '../output/cli-error.js';
import type { Fault, FaultContext } from './fault.js';
import type { AdminFaultSpec } from './scenario.js';

/** Bound of one switchboard call. */
const CALL_TIMEOUT_MS = 3_000;

/**
 * A switch of the service's own fault board (the desk's `/admin/faults`: provider latency or
 * outage, slow query, held row lock, CPU block), sent with `X-Admin-Token`. The switch-off body
 * is sent on remove and, if remove did not happen, again on dispose.
 */
export function adminFault(spec: AdminFaultSpec, ctx: FaultContext): Fault {
  if (ctx.adminToken === undefined)
    throw new CliError('USAGE', 'an admin fault needs --admin-token (or HANGPROOF_ADMIN_TOKEN)');
  const url = new URL(spec.path ?? '/admin/faults', ctx.baseUrl).toString();
  let on = false;
  const call = async (body: Readonly<Record<string, unknown>>): Promise<void> => {
    let res: Response;
    try {
      res = await fetch(url, {
        method: spec.method ?? 'PUT',
        headers: { 'content-type': 'application/json', 'x-admin-token': ctx.adminToken as string },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
        redirect: 'error',
      });
      await res.text();
    } catch (err) {
      throw new CliError(
        'FAULT_FAILED',
        `${url} did not answer: ${describeNetworkError(err)} (limit ${CALL_TIMEOUT_MS} ms)`,
      );
    }
    if (res.status === 401 || res.status === 403)
      throw new CliError('UNAUTHORIZED', `${url} answered ${res.status}: check --admin-token`);
    if (!res.ok) throw new CliError('FAULT_FAILED', `${url} answered ${res.status} to ${JSON.stringify(body)}`);
  };
  return {
    kind: 'admin',
    label: `${spec.method ?? 'PUT'} ${spec.path ?? '/admin/faults'} ${JSON.stringify(spec.inject)}`,
    async prepare() {},
    async inject() {
      on = true;
      await call(spec.inject);
    },
    async remove() {
      if (!on) return;
      on = false;
      await call(spec.remove ?? { kind: 'clear' });
    },
    async dispose() {
      if (on) await call(spec.remove ?? { kind: 'clear' }).catch(() => {});
      on = false;
    },
    detail: () => ({
      path: spec.path ?? '/admin/faults',
      inject: spec.inject,
      remove: spec.remove ?? { kind: 'clear' },
    }),
  };
}
