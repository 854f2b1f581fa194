import type { Dependencies, HttpDependency } from 'hangproof/deps';
import type { Database } from 'hangproof/pg';
import type { Logger } from 'pino';
import type { Authenticate } from './auth.js';
import type { FaultBoard } from './faults.js';
import type { HeldLocks } from './held-locks.js';
import type { Quotes } from './providers/quotes.js';

/** What the routes share: built once by buildDesk, passed to each route module. */
export interface DeskContext {
  readonly db: Database;
  readonly authenticate: Authenticate;
  readonly deps: Dependencies;
  readonly marketData: HttpDependency;
  readonly broker: HttpDependency;
  readonly quotes: Quotes;
  readonly faults: FaultBoard;
  readonly heldLocks: HeldLocks;
  readonly logger: Logger;
  /** The interval of a background loop, for staleness on /api/autonomy/status. */
  jobIntervalMs(loop: string): number;
}
