// Preloaded (--import) into a benchmark server by the alloc suite: between the IPC commands
// `heap-start` and `heap-stop` it samples every allocation with V8's sampling heap profiler,
// objects already collected included, and answers with the bytes allocated per package.
// Plain JS, like the servers, so it runs without a TypeScript loader.
import { Session } from 'node:inspector';

/** One sample every 256 bytes on average: fine enough for a few KB per request. */
const SAMPLING_INTERVAL_BYTES = 256;

const session = new Session();
session.connect();
const post = (method, params) =>
  new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));

/** Where an allocation site's code lives: an npm package, hangproof, Node's core, or V8 itself. */
function ownerOf(url) {
  if (url === '') return '(V8 builtins: JSON, RegExp, strings)';
  if (url.startsWith('node:')) return '(Node core)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/');
    return parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] ?? url);
  }
  if (url.includes('/packages/hangproof/')) return 'hangproof';
  return '(the route)';
}

function bytesByOwner(head) {
  const byOwner = new Map();
  let total = 0;
  const stack = [head];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node.selfSize > 0) {
      const owner = ownerOf(node.callFrame.url);
      byOwner.set(owner, (byOwner.get(owner) ?? 0) + node.selfSize);
      total += node.selfSize;
    }
    stack.push(...node.children);
  }
  return { total, byOwner: Object.fromEntries(byOwner) };
}

process.on('message', async (m) => {
  if (m?.cmd === 'heap-start') {
    await post('HeapProfiler.startSampling', {
      samplingInterval: SAMPLING_INTERVAL_BYTES,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    process.send?.({ type: 'heap-started' });
  } else if (m?.cmd === 'heap-stop') {
    const { profile } = await post('HeapProfiler.stopSampling');
    process.send?.({ type: 'heap', ...bytesByOwner(profile.head) });
  }
});
