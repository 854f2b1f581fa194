import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';

const PUBLIC_DIR = new URL('../../public/', import.meta.url);

/** The dashboard's files: plain HTML, JS and CSS, no build step, read once at startup. */
const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

/** Serves the dashboard at `/`. The page reads the API with the token the user gives it. */
export async function dashboardRoutes(app: FastifyInstance): Promise<void> {
  for (const [path, { file, type }] of Object.entries(FILES)) {
    const body = await readFile(new URL(file, PUBLIC_DIR));
    app.get(path, (_request, reply) => {
      reply.header('content-type', type).header('cache-control', 'no-cache').send(body);
    });
  }
}
