/**
 * Maps the frames of a stall report from the code V8 ran (a build's .js, or what tsx transpiled in
 * memory) to the source the developer wrote: `faults.ts:17` instead of `faults.ts:1` or
 * `faults.js:12`. Runs on the main thread, after the stall was reported, never on a request's path.
 *
 * Two sources of maps, in order:
 * - Node's own source-map cache (`findSourceMap`), filled as modules load when source maps are
 *   enabled: `--enable-source-maps`, `process.setSourceMapsEnabled(true)` before the modules load
 *   (tsx does it), or `module.setSourceMapsSupport()` (Node 22.14+). This is the only way to map
 *   code transpiled in memory.
 * - Otherwise, for a file on disk, its `//# sourceMappingURL=` comment (a .map file beside it, or an
 *   inline data: URL), read and parsed here. A build with source maps (tsc's `sourceMap`, which
 *   hangproof's own dist ships) is then mapped without any flag, on Node 20 and 24 alike. Enabling
 *   source maps process-wide is left to the service: it also rewrites every `Error.stack`, at a cost.
 */
import { readFile, stat } from 'node:fs/promises';
import { findSourceMap, SourceMap, type SourceMapPayload, type SourceMapping } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { StallFrame } from './stall-watchdog.js';

/** Generated files whose map (or lack of one) is remembered; the cache is cleared past this. */
const MAX_FILES_CACHED = 200;
/** A generated file or map larger than this is not read, in bytes. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;
const SOURCE_MAPPING_URL = /\/\/[#@] sourceMappingURL=(\S+)\s*$/;

const mapsRead = new Map<string, Promise<SourceMap | undefined>>();

/** The frames with their original file, line and column where a source map knows them. */
export async function toOriginalFrames(frames: readonly StallFrame[]): Promise<StallFrame[]> {
  return Promise.all(frames.map(toOriginalFrame));
}

async function toOriginalFrame(frame: StallFrame): Promise<StallFrame> {
  if (!frame.url.startsWith('file:')) return frame;
  const map = await sourceMapOf(frame.url);
  if (map === undefined) return frame;
  const entry = map.findEntry(frame.line - 1, frame.column - 1);
  if (!isMapping(entry)) return frame;
  return {
    functionName: frame.functionName,
    url: entry.originalSource,
    line: entry.originalLine + 1,
    column: entry.originalColumn + 1,
  };
}

const isMapping = (e: SourceMapping | Record<string, never>): e is SourceMapping =>
  typeof (e as Partial<SourceMapping>).originalSource === 'string';

function sourceMapOf(url: string): Promise<SourceMap | undefined> {
  const cached = findSourceMap(url);
  if (cached !== undefined) return Promise.resolve(cached);
  let read = mapsRead.get(url);
  if (read === undefined) {
    if (mapsRead.size >= MAX_FILES_CACHED) mapsRead.clear();
    // A file that cannot be read or has a broken map is shown as V8 ran it.
    read = readSourceMap(url).catch(() => undefined);
    mapsRead.set(url, read);
  }
  return read;
}

async function readSourceMap(generatedUrl: string): Promise<SourceMap | undefined> {
  const code = await readBounded(generatedUrl);
  const ref = code === undefined ? undefined : SOURCE_MAPPING_URL.exec(code.slice(-4096))?.[1];
  if (ref === undefined) return undefined;
  const mapUrl = new URL(ref, generatedUrl);
  const text = mapUrl.protocol === 'data:' ? dataUrlText(mapUrl.href) : await readBounded(mapUrl.href);
  if (text === undefined) return undefined;
  const payload = JSON.parse(text) as SourceMapPayload;
  // Sources are relative to the map (and its sourceRoot); frames name absolute URLs.
  const root = new URL(payload.sourceRoot ? `${payload.sourceRoot.replace(/\/?$/, '/')}` : './', mapUrl);
  return new SourceMap({ ...payload, sources: payload.sources.map((s) => new URL(s, root).href) });
}

async function readBounded(fileUrl: string): Promise<string | undefined> {
  if (!fileUrl.startsWith('file:')) return undefined;
  const path = fileURLToPath(fileUrl);
  if ((await stat(path)).size > MAX_FILE_BYTES) return undefined;
  return readFile(path, 'utf8');
}

function dataUrlText(href: string): string | undefined {
  const comma = href.indexOf(',');
  if (comma < 0) return undefined;
  const meta = href.slice(0, comma);
  const data = href.slice(comma + 1);
  return meta.endsWith(';base64') ? Buffer.from(data, 'base64').toString('utf8') : decodeURIComponent(data);
}
