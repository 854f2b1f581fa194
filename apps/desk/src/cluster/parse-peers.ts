import type { ClusterPeer } from './cluster-view.js';

/**
 * Parses `DESK_CLUSTER_PEERS`: `id=url` pairs separated by commas, e.g.
 * `desk-1=http://127.0.0.1:3101,desk-2=http://127.0.0.1:3102`. Throws TypeError naming a bad entry.
 */
export function parsePeers(raw: string): ClusterPeer[] {
  const peers: ClusterPeer[] = [];
  for (const part of raw.split(',')) {
    const entry = part.trim();
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    const id = entry.slice(0, eq).trim();
    const url = entry.slice(eq + 1).trim();
    if (eq <= 0 || !/^[A-Za-z0-9._-]{1,64}$/.test(id) || !/^https?:\/\/[^\s,]+$/.test(url)) {
      throw new TypeError(`DESK_CLUSTER_PEERS entries must look like id=http://host:port, received '${entry}'`);
    }
    peers.push({ id, url: url.replace(/\/+$/, '') });
  }
  return peers;
}

/** The inverse of parsePeers. */
export function formatPeers(peers: readonly ClusterPeer[]): string {
  return peers.map((p) => `${p.id}=${p.url}`).join(',');
}
