import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LOGIN_BODY_LIMIT, type StatusAnswer, type StatusEndpoints } from './status-endpoints.js';

const send = (reply: FastifyReply, answer: StatusAnswer): FastifyReply =>
  reply.code(answer.status).headers(answer.headers).send(answer.body);

/** The status endpoints as Fastify routes: GET /metrics, /status, /status.json, the assets, POST login and logout. */
export async function registerStatusRoutes(
  app: FastifyInstance,
  endpoints: StatusEndpoints<FastifyRequest>,
): Promise<void> {
  if (endpoints.metricsPath !== undefined) {
    app.get(endpoints.metricsPath, async (request, reply) => send(reply, await endpoints.metrics(request)));
  }
  const paths = endpoints.paths;
  if (paths === undefined) return;
  app.get(paths.status, async (request, reply) => send(reply, await endpoints.statusPage(request)));
  app.get(paths.statusJson, async (request, reply) => send(reply, await endpoints.statusJson(request)));
  for (const path of paths.assets.keys()) {
    const answer = endpoints.asset(path) as StatusAnswer;
    app.get(path, (_request, reply) => {
      send(reply, answer);
    });
  }
  // The login form posts urlencoded data, which Fastify does not parse by default; the parser is
  // added in an encapsulated context so the service's own routes are unaffected.
  await app.register(async (child) => {
    child.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: LOGIN_BODY_LIMIT },
      (_req, body, done) => {
        done(null, new URLSearchParams(body as string));
      },
    );
    child.post(paths.login, async (request, reply) => {
      const token = request.body instanceof URLSearchParams ? request.body.get('token') : undefined;
      return send(reply, endpoints.login(request, token ?? undefined));
    });
    child.post(paths.logout, async (request, reply) => send(reply, endpoints.logout(request)));
  });
}
