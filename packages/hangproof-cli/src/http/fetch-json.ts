import { CliError, describeNetworkError } from '../output/cli-error.js';

/**
 * GET a JSON document with one bound on everything (connect, headers and body): fetch's signal
 * covers reading the body too, so a server that accepts and never answers, or answers and then
 * stalls mid-body, ends in `timeoutMs`. Errors become a one-line CliError (exit 2).
 */
export async function fetchJson(url: string, headers: Record<string, string>, timeoutMs: number): Promise<unknown> {
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json', ...headers }, signal, redirect: 'error' });
  } catch (err) {
    throw new CliError('CONNECT_FAILED', `cannot reach ${url}: ${describeNetworkError(err)} (limit ${timeoutMs} ms)`);
  }
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    throw new CliError('CONNECT_FAILED', `reading ${url} failed: ${describeNetworkError(err)} (limit ${timeoutMs} ms)`);
  }
  if (res.status === 401 || res.status === 403) {
    throw new CliError(
      'UNAUTHORIZED',
      `${url} answered ${res.status}: pass --admin-token or set HANGPROOF_ADMIN_TOKEN`,
    );
  }
  if (!res.ok) throw new CliError('HTTP_ERROR', `${url} answered ${res.status}`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CliError('BAD_RESPONSE', `${url} did not answer JSON`);
  }
}
