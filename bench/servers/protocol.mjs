// Server side of the benchmark protocol (plain JS so servers run without a TypeScript loader,
// against the built library, exactly as a user's service would).

/** Call once the server listens: reports readiness and answers CPU measurement requests. */
export function serveBenchProtocol(url) {
  let start = process.cpuUsage();
  process.on('message', (m) => {
    if (m.cmd === 'cpu-start') {
      start = process.cpuUsage();
      process.send?.({ type: 'cpu-started' });
    } else if (m.cmd === 'cpu-stop') {
      const d = process.cpuUsage(start);
      process.send?.({ type: 'cpu', cpuMicros: d.user + d.system });
    }
  });
  process.send?.({ type: 'ready', url });
}
