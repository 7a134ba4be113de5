import { readDockerCredential } from './docker-config.js';
import { envCredential } from './env.js';
import { readKitCredential } from './store.js';
import type { Credential } from './types.js';

/**
 * The credential for `registry` (host[:port] as in references), looked up in order:
 * kit's own auth.json, Docker's configuration (helpers, then auths), the environment.
 * undefined: go anonymous.
 */
export async function findCredential(registry: string): Promise<Credential | undefined> {
  return (await readKitCredential(registry)) ?? (await readDockerCredential(registry)) ?? envCredential(registry);
}
