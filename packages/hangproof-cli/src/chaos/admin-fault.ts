import { setTimeout as sleep } from 'node:timers/promises';
import { CliError, describeNetworkError } from '../output/cli-error.js';
import type { Fault, FaultContext } from './fault.js';
import type { AdminFaultSpec } from './scenario.js';

/** Bound of one switchboard call. */
const CALL_TIMEOUT_MS = 3_000;
/**
 * How long a switch-off keeps asking while the service sheds it (503 or 429): under the runner's
 * 5 s bound of a step, and long enough for two retries at observe's default Retry-After of 2 s.
 */
const SWITCH_OFF_BUDGET_MS = 4_500;
/** Pause before asking again when the refusal names no usable Retry-After. */
const DEFAULT_RETRY_PAUSE_MS = 500;
/** Least pause between two asks, whatever Retry-After says (`0` must not become a busy loop). */
const MIN_RETRY_PAUSE_MS = 100;

type Body = Readonly<Record<string, unknown>>;

/**
 * A switch of the service's own fault board (the desk's `/admin/faults`: provider latency or
 * outage, slow query, held row lock, CPU block), sent with `X-Admin-Token`. The switch-off body
 * is sent on remove and, if remove did not happen, again on dispose. A service under overload may
 * shed the switch-off itself: it is idempotent, so it is asked again after the refusal's
 * Retry-After, within SWITCH_OFF_BUDGET_MS. Switching on is not retried: a fault that could not be
 * injected fails the run at once.
 */
export function adminFault(spec: AdminFaultSpec, ctx: FaultContext): Fault {
  if (ctx.adminToken === undefined)
    throw new CliError('USAGE', 'an admin fault needs --admin-token (or HANGPROOF_ADMIN_TOKEN)');
  const url = new URL(spec.path ?? '/admin/faults', ctx.baseUrl).toString();
  const switchOffBody = spec.remove ?? { kind: 'clear' };
  let on = false;

  const send = async (body: Body, timeoutMs: number): Promise<Response> => {
    try {
      const res = await fetch(url, {
        method: spec.method ?? 'PUT',
        headers: { 'content-type': 'application/json', 'x-admin-token': ctx.adminToken as string },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
      await res.text();
      return res;
    } catch (err) {
      throw new CliError('FAULT_FAILED', `${url} did not answer: ${describeNetworkError(err)} (limit ${timeoutMs} ms)`);
    }
  };
  const check = (res: Response, body: Body, tries = 1): void => {
    if (res.status === 401 || res.status === 403)
      throw new CliError('UNAUTHORIZED', `${url} answered ${res.status}: check --admin-token`);
    if (!res.ok) {
      const times = tries > 1 ? ` ${tries} times within ${SWITCH_OFF_BUDGET_MS} ms` : '';
      throw new CliError('FAULT_FAILED', `${url} answered ${res.status}${times} to ${JSON.stringify(body)}`);
    }
  };
  const switchOff = async (): Promise<void> => {
    const until = performance.now() + SWITCH_OFF_BUDGET_MS;
    for (let tries = 1; ; tries++) {
      const res = await send(
        switchOffBody,
        Math.max(1, Math.ceil(Math.min(CALL_TIMEOUT_MS, until - performance.now()))),
      );
      const shed = res.status === 503 || res.status === 429;
      const pauseMs = shed ? Math.max(MIN_RETRY_PAUSE_MS, retryPauseMs(res.headers.get('retry-after'))) : -1;
      if (pauseMs < 0 || performance.now() + pauseMs >= until) return check(res, switchOffBody, tries);
      await sleep(pauseMs);
    }
  };

  return {
    kind: 'admin',
    label: `${spec.method ?? 'PUT'} ${spec.path ?? '/admin/faults'} ${JSON.stringify(spec.inject)}`,
    async prepare() {},
    async inject() {
      on = true;
      check(await send(spec.inject, CALL_TIMEOUT_MS), spec.inject);
    },
    async remove() {
      if (!on) return;
      on = false;
      await switchOff();
    },
    async dispose() {
      if (on) await switchOff().catch(() => {});
      on = false;
    },
    detail: () => ({
      path: spec.path ?? '/admin/faults',
      inject: spec.inject,
      remove: switchOffBody,
    }),
  };
}

/** The pause a refusal asks for: Retry-After in seconds or as an HTTP date, else the default. */
export function retryPauseMs(retryAfter: string | null, now = Date.now()): number {
  if (retryAfter === null) return DEFAULT_RETRY_PAUSE_MS;
  const trimmed = retryAfter.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? DEFAULT_RETRY_PAUSE_MS : Math.max(0, at - now);
}
