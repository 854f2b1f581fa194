import type { IncomingMessage, ServerResponse } from 'node:http';
import { HangproofError } from '../errors.js';
import { LOGIN_BODY_LIMIT, type StatusAnswer, type StatusEndpoints } from './status-endpoints.js';

const FORM_TYPE = 'application/x-www-form-urlencoded';

/**
 * Serves the status endpoints on node:http's request and response (the node adapters), with the
 * same answers as the Fastify routes. Returns undefined when the request is not one of them
 * (the application's own route), else a promise that settles once the answer is written and
 * rejects with the error to answer in the error shape (UNAUTHORIZED, a bad login body).
 */
export function serveStatus(
  endpoints: StatusEndpoints<IncomingMessage>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> | undefined {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const answer = answerFor(endpoints, req, path);
  if (answer === undefined) return undefined;
  return answer.then((a) => write(res, a));
}

function answerFor(
  endpoints: StatusEndpoints<IncomingMessage>,
  req: IncomingMessage,
  path: string,
): Promise<StatusAnswer> | undefined {
  const paths = endpoints.paths;
  // HEAD as GET, as Fastify's routes do: node leaves out the body.
  if (req.method === 'GET' || req.method === 'HEAD') {
    if (path === endpoints.metricsPath) return endpoints.metrics(req);
    if (paths === undefined) return undefined;
    if (path === paths.status) return endpoints.statusPage(req);
    if (path === paths.statusJson) return endpoints.statusJson(req);
    const asset = endpoints.asset(path);
    return asset === undefined ? undefined : Promise.resolve(asset);
  }
  if (req.method !== 'POST' || paths === undefined) return undefined;
  if (path === paths.login) return readForm(req).then((form) => endpoints.login(req, form?.get('token') ?? undefined));
  if (path === paths.logout) {
    req.resume();
    return Promise.resolve(endpoints.logout(req));
  }
  return undefined;
}

/**
 * The login form's fields: at most LOGIN_BODY_LIMIT bytes of urlencoded data; no body, no form.
 * A client that stops sending is bounded by the request's deadline (its 504 is sent meanwhile)
 * and then by the server's own request timeout, which closes the socket and ends this read.
 */
function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const type = req.headers['content-type'];
  if (type === undefined) {
    req.resume();
    return Promise.resolve(undefined);
  }
  if (type.split(';')[0]?.trim().toLowerCase() !== FORM_TYPE) {
    req.resume();
    return Promise.reject(new HangproofError('UNSUPPORTED_MEDIA_TYPE'));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > LOGIN_BODY_LIMIT) {
        req.off('data', onData);
        req.resume();
        reject(new HangproofError('PAYLOAD_TOO_LARGE'));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.once('error', reject);
    req.once('close', () => reject(new HangproofError('CLIENT_CLOSED_REQUEST')));
  });
}

function write(res: ServerResponse, answer: StatusAnswer): void {
  // The deadline's 504 (or the client leaving) came first: that answer stands.
  if (res.headersSent || res.writableEnded) return;
  res.statusCode = answer.status;
  for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
  res.end(answer.body);
}
