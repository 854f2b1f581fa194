/**
 * A short name a reader recognises for a statement: its verb and the first table it touches,
 * `SELECT bots`, `INSERT orders`, `UPDATE bots`, or the verb alone (`SELECT`, `BEGIN`) when no
 * table is named. It names the statement's span in waterfalls, Server-Timing and traces, where
 * the full fingerprint is too long to read and `q1`, `q2` say nothing.
 *
 * Built from the fingerprint (literals already gone), so a name never holds a value. Cached like
 * fingerprints: a service runs a few hundred distinct statements.
 */
const CACHE_MAX = 2_000;
const cache = new Map<string, string>();

/** A table after FROM, INTO, UPDATE or JOIN: an identifier, maybe schema-qualified or quoted. */
const TABLE =
  /\b(?:FROM|INTO|UPDATE|JOIN)\s+((?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)(?:\.(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*))?)/i;
const VERB = /^\s*\(?\s*([A-Za-z]+)/;
/** Words after FROM that are not tables (`FROM (SELECT ...)` is caught by the pattern itself). */
const NOT_TABLES = new Set(['select', 'lateral', 'only', 'unnest', 'generate_series', 'json_to_recordset']);

/** `<VERB> <table>` of a fingerprint (see `fingerprint`), e.g. `SELECT bots`. */
export function statementName(fingerprint: string): string {
  const hit = cache.get(fingerprint);
  if (hit !== undefined) return hit;
  const name = build(fingerprint);
  if (cache.size >= CACHE_MAX) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(fingerprint, name);
  return name;
}

function build(fp: string): string {
  const verb = (VERB.exec(fp)?.[1] ?? 'SQL').toUpperCase();
  const table = TABLE.exec(fp)?.[1];
  if (table === undefined || NOT_TABLES.has(table.toLowerCase())) return verb;
  return `${verb} ${table.replaceAll('"', '')}`.slice(0, 80);
}
