/**
 * How registries are named in credential files. Docker keys its config by server address, and
 * for Docker Hub that is the legacy `https://index.docker.io/v1/`; other tools write
 * `docker.io`, `index.docker.io` or `registry-1.docker.io`. Keys may carry a scheme or a path
 * (`https://reg.io`, `reg.io/v2/`), which docker ignores when matching.
 */
export const DOCKER_HUB = 'docker.io';
export const DOCKER_HUB_SERVER_URL = 'https://index.docker.io/v1/';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** The host[:port] a credential key names: scheme and path dropped, lower-case. */
export function keyHost(key: string): string {
  let k = key.trim().toLowerCase();
  const scheme = k.indexOf('://');
  if (scheme >= 0) k = k.slice(scheme + 3);
  const slash = k.indexOf('/');
  if (slash >= 0) k = k.slice(0, slash);
  return k;
}

/** One name per registry: lower-case host[:port], Docker Hub as `docker.io`. */
export function canonicalRegistry(registryOrKey: string): string {
  const host = keyHost(registryOrKey);
  return DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB : host;
}

export function isDockerHub(registry: string): boolean {
  return canonicalRegistry(registry) === DOCKER_HUB;
}

/** Does a credential-file key name this registry? */
export function keyMatches(key: string, registry: string): boolean {
  return canonicalRegistry(key) === canonicalRegistry(registry);
}

/**
 * The entry for `registry` in a map keyed by server address. An exact key wins over an alias,
 * so `reg.io` beats `https://reg.io/v1/` when a file has both.
 */
export function findEntry<T>(map: Record<string, T> | undefined, registry: string): [string, T] | undefined {
  if (!map) return undefined;
  const entries = Object.entries(map);
  const want = canonicalRegistry(registry);
  const exact = entries.find(([k]) => k.trim().toLowerCase() === registry.trim().toLowerCase());
  if (exact) return exact;
  if (want === DOCKER_HUB) {
    // Docker's own key first: it is what `docker login` writes.
    const hub = entries.find(([k]) => k === DOCKER_HUB_SERVER_URL);
    if (hub) return hub;
  }
  return entries.find(([k]) => canonicalRegistry(k) === want);
}
