/**
 * The heavy parts of hangproof (a bundled PostgreSQL for tests, the OpenTelemetry exporter) are
 * optional peer dependencies, so an install carries them only when a service asks for them. When
 * a feature needs one that is not installed, this turns the loader's "Cannot find package" into an
 * error that names the feature and the exact install command.
 */

/** True for the error `import()` throws when a package is not installed. */
function isNotInstalled(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

/**
 * Awaits `load` (the feature's dynamic imports); when a package is missing, throws an `Error`
 * saying that `feature` needs `packages` and how to install them, with the loader's error as cause.
 */
export async function importOptionalPeers<T>(
  feature: string,
  packages: readonly string[],
  load: () => Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (!isNotInstalled(err)) throw err;
    throw new Error(
      `${feature} needs the optional peer dependenc${packages.length === 1 ? 'y' : 'ies'} ${packages.join(', ')}, which ${packages.length === 1 ? 'is' : 'are'} not installed: npm install ${packages.join(' ')}`,
      { cause: err },
    );
  }
}
