import { KitError } from '../../errors.js';
import { createRegistryClient } from '../client.js';
import { registryError } from '../errors.js';
import type { RegistrySettings } from '../types.js';
import type { Credential } from './types.js';

function loginFailed(registry: string, why: string): KitError {
  return new KitError('LOGIN_FAILED', `login to ${registry} failed: ${why}`, {
    hint: 'check the username and the password or token (for registries with SSO, use an access token as the password)',
  });
}

/**
 * Checks `cred` against the registry the way `docker login` does: GET /v2/ with those
 * credentials (for a token registry that means a token request with no scope). Throws
 * KitError LOGIN_FAILED when they are refused; resolves when they are accepted or the
 * registry does not ask for any.
 */
export async function verifyLogin(registry: string, cred: Credential, settings?: RegistrySettings): Promise<void> {
  const client = await createRegistryClient(registry, {
    ...(settings ? { settings } : {}),
    credentials: async () => cred,
  });
  try {
    const res = await client.request({ method: 'GET', url: '/v2/', scopes: [] });
    if (res.status === 401) {
      await res.dump();
      throw loginFailed(registry, 'the registry refused the credentials');
    }
    if (res.status >= 400) throw await registryError(res, 'login to', registry);
    await res.dump();
  } catch (err) {
    // The token server said no: same thing as far as the user is concerned.
    if (err instanceof KitError && (err.code === 'UNAUTHORIZED' || err.code === 'DENIED')) {
      throw loginFailed(registry, err.message.replace(/^authentication to \S+ failed: /, ''));
    }
    throw err;
  } finally {
    await (client as { close?: () => Promise<void> }).close?.();
  }
}
