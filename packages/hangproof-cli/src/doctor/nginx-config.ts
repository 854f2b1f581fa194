/**
 * Reads the timeout directives of an nginx configuration. A hand-written parser of the directive
 * syntax (words, quoted strings, `;`, `{ }`, `#` comments) is enough here: the timeouts are simple
 * directives, and the npm nginx parsers either pull in native builds, are unmaintained, or keep no
 * block structure. This parser reads one file; `loadNginxConfig` (nginx-includes.ts) follows its
 * `include` directives. Variables are not expanded; a directive nginx would reject is reported as
 * a parse error rather than guessed.
 */
import { parseDurationMs } from '../output/duration.js';

export interface NginxDirective {
  readonly name: string;
  readonly args: readonly string[];
  readonly line: number;
  readonly block: readonly NginxDirective[] | undefined;
  /** The file the directive came from, when it differs from the one given to nginxTimeouts. */
  readonly file?: string | undefined;
}

/** Tokenises and parses nginx syntax into a tree of directives. Throws SyntaxError with a line number. */
export function parseNginx(text: string): NginxDirective[] {
  const tokens = tokenize(text);
  let i = 0;
  const parseBlock = (closing: boolean): NginxDirective[] => {
    const out: NginxDirective[] = [];
    let words: { text: string; line: number }[] = [];
    while (i < tokens.length) {
      const tok = tokens[i++] as Token;
      if (tok.kind === 'word') words.push(tok);
      else if (tok.kind === ';') {
        const [head, ...rest] = words;
        if (head === undefined) throw new SyntaxError(`unexpected ';' on line ${tok.line}`);
        out.push({ name: head.text, args: rest.map((w) => w.text), line: head.line, block: undefined });
        words = [];
      } else if (tok.kind === '{') {
        const [head, ...rest] = words;
        if (head === undefined) throw new SyntaxError(`unexpected '{' on line ${tok.line}`);
        const block = parseBlock(true);
        out.push({ name: head.text, args: rest.map((w) => w.text), line: head.line, block });
        words = [];
      } else {
        if (!closing) throw new SyntaxError(`unexpected '}' on line ${tok.line}`);
        if (words.length > 0) throw new SyntaxError(`missing ';' before line ${tok.line}`);
        return out;
      }
    }
    if (closing) throw new SyntaxError(`missing '}' at end of file`);
    if (words.length > 0) throw new SyntaxError(`missing ';' at end of file`);
    return out;
  };
  return parseBlock(false);
}

type Token = { kind: 'word'; text: string; line: number } | { kind: ';' | '{' | '}'; line: number };

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '\n') {
      line++;
      i++;
    } else if (/\s/.test(c)) i++;
    else if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === ';' || c === '{' || c === '}') {
      out.push({ kind: c, line });
      i++;
    } else if (c === '"' || c === "'") {
      const startLine = line;
      let j = i + 1;
      let word = '';
      while (j < text.length && text[j] !== c) {
        if (text[j] === '\\' && j + 1 < text.length) j++;
        if (text[j] === '\n') line++;
        word += text[j];
        j++;
      }
      if (j >= text.length) throw new SyntaxError(`unterminated string on line ${startLine}`);
      out.push({ kind: 'word', text: word, line: startLine });
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && !/[\s;{}#]/.test(text[j] as string)) j++;
      out.push({ kind: 'word', text: text.slice(i, j), line });
      i = j;
    }
  }
  return out;
}

/** A timeout setting found in (or defaulted from) the nginx config, in ms. */
export interface NginxSetting {
  readonly valueMs: number;
  /** `nginx.conf:12` where it was set, or `nginx default`. */
  readonly where: string;
  /** For per-location values, the location (e.g. `server api.example.com location /api`). */
  readonly scope?: string;
}

/** The timeout view of an nginx config that `doctor` needs. */
export interface NginxTimeouts {
  /** Lowest `proxy_read_timeout` among proxied locations (the first limit a slow answer meets). */
  readonly proxyReadTimeout: NginxSetting;
  readonly proxyReadTimeoutMax: NginxSetting;
  readonly proxySendTimeout: NginxSetting;
  readonly proxyConnectTimeout: NginxSetting;
  /** Client-side idle keep-alive (`keepalive_timeout` in http/server). */
  readonly keepaliveTimeout: NginxSetting;
  readonly clientBodyTimeout: NginxSetting;
  /** Idle time of kept-alive upstream connections, when an upstream has `keepalive`. */
  readonly upstreamKeepaliveTimeout: NginxSetting | undefined;
  /** Number of proxied locations seen. */
  readonly proxiedLocations: number;
}

/** nginx's documented defaults for the directives doctor reads. */
export const NGINX_DEFAULTS_MS = Object.freeze({
  proxy_read_timeout: 60_000,
  proxy_send_timeout: 60_000,
  proxy_connect_timeout: 60_000,
  keepalive_timeout: 75_000,
  client_body_timeout: 60_000,
  upstream_keepalive_timeout: 60_000,
});

const INHERITED = [
  'proxy_read_timeout',
  'proxy_send_timeout',
  'proxy_connect_timeout',
  'keepalive_timeout',
  'client_body_timeout',
] as const;
type Inherited = (typeof INHERITED)[number];

/** Extracts the effective timeouts, applying nginx's http > server > location inheritance. */
export function nginxTimeouts(tree: readonly NginxDirective[], fileLabel: string): NginxTimeouts {
  const defaults = Object.fromEntries(
    INHERITED.map((k) => [k, { valueMs: NGINX_DEFAULTS_MS[k], where: 'nginx default' }]),
  ) as Record<Inherited, NginxSetting>;
  const proxied: { scope: string; values: Record<Inherited, NginxSetting> }[] = [];
  const serverLevel: Record<Inherited, NginxSetting>[] = [];
  let upstreamKeepalive: NginxSetting | undefined;

  const whereOf = (d: NginxDirective): string => `${d.file ?? fileLabel}:${d.line}`;
  const read = (d: NginxDirective): number => {
    const ms = parseDurationMs(d.args[0] ?? '', 's');
    if (ms === undefined) throw new SyntaxError(`${d.name} has no valid time at ${whereOf(d)}: ${d.args.join(' ')}`);
    return ms;
  };
  const walk = (dirs: readonly NginxDirective[], inherited: Record<Inherited, NginxSetting>, scope: string): void => {
    const here = { ...inherited };
    for (const d of dirs) {
      if ((INHERITED as readonly string[]).includes(d.name) && d.block === undefined) {
        here[d.name as Inherited] = { valueMs: read(d), where: whereOf(d) };
      }
    }
    let proxies = false;
    for (const d of dirs) {
      if (d.name === 'proxy_pass' || d.name === 'grpc_pass') proxies = true;
      if (d.name === 'upstream' && d.block !== undefined) {
        const hasKeepalive = d.block.some((u) => u.name === 'keepalive');
        const kt = d.block.find((u) => u.name === 'keepalive_timeout');
        if (hasKeepalive) {
          const s =
            kt === undefined
              ? { valueMs: NGINX_DEFAULTS_MS.upstream_keepalive_timeout, where: 'nginx default' }
              : { valueMs: read(kt), where: whereOf(kt) };
          if (upstreamKeepalive === undefined || s.valueMs > upstreamKeepalive.valueMs)
            upstreamKeepalive = { ...s, scope: `upstream ${d.args[0] ?? ''}` };
        }
      } else if (d.block !== undefined && (d.name === 'http' || d.name === 'server' || d.name === 'location')) {
        const label = d.name === 'http' ? scope : `${scope}${scope ? ' ' : ''}${d.name}${nameOf(d)}`;
        if (d.name === 'server') serverLevel.push(effectiveServer(d.block, here));
        walk(d.block, here, label);
      }
    }
    if (proxies) proxied.push({ scope: scope || 'main', values: here });
  };
  const effectiveServer = (dirs: readonly NginxDirective[], inherited: Record<Inherited, NginxSetting>) => {
    const here = { ...inherited };
    for (const d of dirs)
      if ((INHERITED as readonly string[]).includes(d.name) && d.block === undefined)
        here[d.name as Inherited] = { valueMs: read(d), where: whereOf(d) };
    return here;
  };
  walk(tree, defaults, '');

  const pick = (key: Inherited, agg: 'min' | 'max'): NginxSetting => {
    const pool = proxied.length > 0 ? proxied.map((p) => ({ ...p.values[key], scope: p.scope })) : [defaults[key]];
    return pool.reduce((a, b) => ((agg === 'min' ? b.valueMs < a.valueMs : b.valueMs > a.valueMs) ? b : a));
  };
  const keepalive =
    serverLevel.length > 0
      ? serverLevel.map((s) => s.keepalive_timeout).reduce((a, b) => (b.valueMs < a.valueMs ? b : a))
      : pick('keepalive_timeout', 'min');
  return {
    proxyReadTimeout: pick('proxy_read_timeout', 'min'),
    proxyReadTimeoutMax: pick('proxy_read_timeout', 'max'),
    proxySendTimeout: pick('proxy_send_timeout', 'max'),
    proxyConnectTimeout: pick('proxy_connect_timeout', 'max'),
    keepaliveTimeout: keepalive,
    clientBodyTimeout: pick('client_body_timeout', 'max'),
    upstreamKeepaliveTimeout: upstreamKeepalive,
    proxiedLocations: proxied.length,
  };
}

function nameOf(d: NginxDirective): string {
  if (d.name === 'server') return '';
  return d.args.length > 0 ? ` ${d.args.join(' ')}` : '';
}
