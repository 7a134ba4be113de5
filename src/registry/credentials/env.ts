import { keyMatches } from './hosts.js';
import type { Credential } from './types.js';

/**
 * Credentials from the environment, for CI: KIT_REGISTRY_USERNAME + KIT_REGISTRY_PASSWORD, or
 * KIT_REGISTRY_TOKEN (an identity token). They apply to KIT_REGISTRY_HOST when that is set,
 * otherwise to any registry.
 */
export function envCredential(registry: string): Credential | undefined {
  const env = process.env;
  const host = env['KIT_REGISTRY_HOST'];
  if (host && !keyMatches(host, registry)) return undefined;
  const username = env['KIT_REGISTRY_USERNAME'] || undefined;
  const password = env['KIT_REGISTRY_PASSWORD'] || undefined;
  const token = env['KIT_REGISTRY_TOKEN'] || undefined;
  if (username !== undefined && password !== undefined) return { username, password };
  if (token !== undefined) return { identityToken: token, ...(username !== undefined ? { username } : {}) };
  return undefined;
}
