/**
 * Loads an nginx configuration with its `include` directives followed, as nginx reads it: each
 * `include` is replaced in place by the directives of the files it names. A Debian or RHEL
 * `nginx.conf` keeps its `server` blocks in `conf.d/*.conf` or `sites-enabled/*`, so without this
 * the audit would see nginx's defaults instead of the site's real timeouts.
 *
 * Matching follows nginx: a relative path is resolved against the directory of the main file
 * (nginx's conf prefix), a pattern with `*`, `?` or `[...]` in its last part may match nothing,
 * and a plain path that does not exist is an error. Patterns are matched in the last path part
 * only, which covers how includes are written in practice. The walk is bounded: includes nest at
 * most 10 deep, at most 500 files are read, and a file that includes itself is an error.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { type NginxDirective, parseNginx } from './nginx-config.js';

const MAX_DEPTH = 10;
const MAX_FILES = 500;

/** An nginx config that cannot be read as nginx would: the message names the file and line. */
export class NginxLoadError extends Error {}

/** Parses `path` and every file it includes; directives of included files carry their file name. */
export async function loadNginxConfig(path: string): Promise<NginxDirective[]> {
  const root = resolve(path);
  const state = { prefix: dirname(root), filesRead: 0 };
  return loadFile(root, basename(root), [], state, path);
}

async function loadFile(
  file: string,
  label: string,
  chain: readonly string[],
  state: { prefix: string; filesRead: number },
  shownPath = file,
): Promise<NginxDirective[]> {
  if (chain.includes(file))
    throw new NginxLoadError(`${label} includes itself (through ${chain.map((f) => basename(f)).join(' > ')})`);
  if (chain.length > MAX_DEPTH) throw new NginxLoadError(`includes nest deeper than ${MAX_DEPTH} levels at ${label}`);
  if (++state.filesRead > MAX_FILES) throw new NginxLoadError(`more than ${MAX_FILES} files included`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new NginxLoadError(`cannot read ${shownPath}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let tree: NginxDirective[];
  try {
    tree = parseNginx(text);
  } catch (err) {
    throw new NginxLoadError(`${label}: ${(err as Error).message}`);
  }
  return expand(tree, label, [...chain, file], state);
}

async function expand(
  dirs: readonly NginxDirective[],
  label: string,
  chain: readonly string[],
  state: { prefix: string; filesRead: number },
): Promise<NginxDirective[]> {
  const out: NginxDirective[] = [];
  for (const d of dirs) {
    if (d.name === 'include' && d.block === undefined) {
      const pattern = d.args[0];
      if (pattern === undefined || d.args.length !== 1)
        throw new NginxLoadError(`${label}:${d.line}: include takes one path`);
      for (const file of await matchInclude(pattern, state.prefix, `${label}:${d.line}`))
        out.push(...(await loadFile(file, basename(file), chain, state)));
    } else {
      const block = d.block === undefined ? undefined : await expand(d.block, label, chain, state);
      out.push({ ...d, block, file: d.file ?? label });
    }
  }
  return out;
}

/** The files an include names, in the sorted order nginx reads them. */
async function matchInclude(pattern: string, prefix: string, where: string): Promise<string[]> {
  const full = isAbsolute(pattern) ? pattern : join(prefix, pattern);
  const last = basename(full);
  if (!/[*?[]/.test(last)) return [full];
  const dir = dirname(full);
  if (/[*?[]/.test(dir))
    throw new NginxLoadError(`${where}: wildcards are followed in the last part of an include only`);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new NginxLoadError(`${where}: cannot list ${dir}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const re = globToRegExp(last);
  return names
    .filter((n) => re.test(n) && !n.startsWith('.'))
    .sort()
    .map((n) => join(dir, n));
}

/** A shell-style pattern (`*`, `?`, `[abc]`) of one path part as a RegExp. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${glob
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
