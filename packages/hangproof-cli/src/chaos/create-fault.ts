import { adminFault } from './admin-fault.js';
import type { Fault, FaultContext } from './fault.js';
import { lockFault } from './lock-fault.js';
import { pauseFault } from './pause-fault.js';
import { pgSleepFault } from './pg-sleep-fault.js';
import { proxyFault } from './proxy-fault.js';
import type { FaultSpec } from './scenario.js';

/** The fault for one scenario entry; throws a CliError (exit 2) when a precondition is missing. */
export function createFault(spec: FaultSpec, ctx: FaultContext): Fault {
  switch (spec.kind) {
    case 'proxy':
      return proxyFault(spec, ctx);
    case 'pause':
      return pauseFault(ctx);
    case 'lock':
      return lockFault(spec, ctx);
    case 'pg-sleep':
      return pgSleepFault(spec, ctx);
    case 'admin':
      return adminFault(spec, ctx);
  }
}
