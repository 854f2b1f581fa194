import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';

const PUBLIC_DIR = new URL('../../public/', import.meta.url);

/** The dashboard's files: plain HTML, JS and CSS, no build step, read once at startup. */
const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

/** Serves the dashboard at `/`. The page reads the API with the token the user gives it. */
export async function dashboardRoutes(app: FastifyInstance): Promise<void> {
  for (const [path, { file, type }] of Object.entries(FILES)) {
    const body = await readFile(new URL(file, PUBLIC_DIR));
    app.get(path, (_request, reply) => {
      reply.header('content-type', type).header('cache-control', 'no-cache').send(body);
    });
  }
  // Browsers and tools that ask for /favicon.ico anyway get an empty answer instead of a 404 line
  // in the log on every page load (the page itself links favicon.svg).
  app.get('/favicon.ico', (_request, reply) => {
    reply.header('cache-control', 'max-age=86400').code(204).send();
  });
}
