/**
 * hangproof's Postgres guard names each transaction's session `<prefix> <route> <request id>`
 * (src/pg/database.ts), so `pg active` can say which request holds a backend. The route may hold
 * spaces (`GET /bots/:id`); the prefix is the first word and the request id the last.
 */
export interface ParsedApplicationName {
  readonly prefix: string;
  readonly route: string;
  readonly requestId: string;
}

export function parseApplicationName(name: string | null | undefined): ParsedApplicationName | undefined {
  if (!name) return undefined;
  const words = name.trim().split(' ');
  if (words.length < 3) return undefined;
  const prefix = words[0] as string;
  const requestId = words[words.length - 1] as string;
  if (!/^[\w.:-]{4,}$/.test(requestId)) return undefined;
  return { prefix, route: words.slice(1, -1).join(' '), requestId };
}
