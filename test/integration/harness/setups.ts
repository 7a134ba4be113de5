/**
 * Ready-made registry setups for integration tests, each a real distribution server:
 *
 *   plain      HTTP, anonymous, read-write.
 *   tls-basic  HTTPS with the test CA, htpasswd Basic auth (default user alice / wonderland);
 *              `mutualTls` additionally requires a client certificate signed by the test CA.
 *   token      Bearer token auth through our token server (HTTP by default, `tls` for HTTPS).
 *              Default ACL: every known user gets pull, push and delete everywhere (and the
 *              catalog); anonymous clients get pull on repositories under `public/` only.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type RunningRegistry } from './registry-server.js';
import { writeHtpasswd } from './htpasswd.js';
import { makeTestPki } from './tls.js';
import { startTokenServer, type Acl, type TokenServer } from './token-server.js';

export type SetupKind = 'plain' | 'tls-basic' | 'token';

export interface SetupOptions {
  /** Default { alice: 'wonderland' } (ignored by `plain`). */
  users?: Record<string, string>;
  /** tls-basic: also demand a client certificate (clientCert/clientKey are returned either way). */
  mutualTls?: boolean;
  /** token: serve registry and token realm over HTTPS with the test CA. */
  tls?: boolean;
  /** token: replace the default ACL. */
  acl?: Acl;
  /** token: access token lifetime in seconds (default 300). */
  tokenTtlSeconds?: number;
  /** token: hand out refresh tokens (default true). */
  refreshTokens?: boolean;
}

export interface Setup {
  kind: SetupKind;
  /** The real registry: host (127.0.0.1:PORT), url, storage, logFile, stop(). */
  registry: RunningRegistry;
  /** PEM path of the CA that signed the registry's certificate (TLS setups). */
  caCert?: string;
  /** PEM paths of a client certificate signed by the same CA (TLS setups). */
  clientCert?: string;
  clientKey?: string;
  /** The accounts that can log in (empty for `plain`). */
  users: Record<string, string>;
  /** The token server (token setup): its realm, the requests it saw, and a way to mint tokens. */
  token?: Pick<TokenServer, 'realm' | 'service' | 'issuer' | 'requests' | 'mint' | 'revokeRefreshToken'>;
  /** Stop everything and remove the setup's files. */
  stop(): Promise<void>;
}

export const DEFAULT_USERS: Readonly<Record<string, string>> = Object.freeze({ alice: 'wonderland' });
export const TOKEN_SERVICE = 'kit-test-registry';
export const TOKEN_ISSUER = 'kit-test-token-issuer';

/** The default token ACL described above. */
export function defaultTokenAcl(users: Record<string, string>): Acl {
  return (user, name, actions, type) => {
    if (user !== undefined && Object.hasOwn(users, user)) {
      // `*` is what clients ask for on registry:catalog:*; repository scopes use named actions.
      return type === 'registry' ? actions.filter((a) => a === '*') : actions.filter((a) => ['pull', 'push', 'delete', '*'].includes(a));
    }
    if (type === 'repository' && name.startsWith('public/')) return actions.filter((a) => a === 'pull');
    return [];
  };
}

export async function startSetup(kind: SetupKind, opts: SetupOptions = {}): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), `kit-setup-${kind}-`));
  const cleanups: Array<() => Promise<void>> = [async () => rm(dir, { recursive: true, force: true })];
  // Stop in reverse order of start; the folder goes last.
  const stopAll = async (): Promise<void> => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  };

  try {
    if (kind === 'plain') {
      const registry = await startRegistry();
      cleanups.push(() => registry.stop());
      return { kind, registry, users: {}, stop: stopAll };
    }

    const users = { ...(opts.users ?? DEFAULT_USERS) };

    if (kind === 'tls-basic') {
      const pki = await makeTestPki(join(dir, 'pki'));
      const htpasswd = join(dir, 'htpasswd');
      await writeHtpasswd(htpasswd, users);
      const registry = await startRegistry({
        tls: { cert: pki.serverCert, key: pki.serverKey },
        auth: { htpasswd: { realm: 'kit-test', path: htpasswd } },
        ...(opts.mutualTls ? { extraConfig: { http: { tls: { clientcas: [pki.caCert] } } }, probeClientCert: { cert: pki.clientCert, key: pki.clientKey } } : {}),
      });
      cleanups.push(() => registry.stop());
      return { kind, registry, caCert: pki.caCert, clientCert: pki.clientCert, clientKey: pki.clientKey, users, stop: stopAll };
    }

    // token
    const pki = opts.tls ? await makeTestPki(join(dir, 'pki')) : undefined;
    const tokens = await startTokenServer({
      users,
      acl: opts.acl ?? defaultTokenAcl(users),
      service: TOKEN_SERVICE,
      issuer: TOKEN_ISSUER,
      tokenTtlSeconds: opts.tokenTtlSeconds ?? 300,
      refreshTokens: opts.refreshTokens ?? true,
      ...(pki ? { tls: { cert: pki.serverCert, key: pki.serverKey } } : {}),
    });
    cleanups.push(() => tokens.stop());
    const registry = await startRegistry({
      ...(pki ? { tls: { cert: pki.serverCert, key: pki.serverKey } } : {}),
      auth: { token: { realm: tokens.realm, service: TOKEN_SERVICE, issuer: TOKEN_ISSUER, rootcertbundle: tokens.rootCertBundle } },
    });
    cleanups.push(() => registry.stop());
    return {
      kind,
      registry,
      ...(pki ? { caCert: pki.caCert, clientCert: pki.clientCert, clientKey: pki.clientKey } : {}),
      users,
      token: tokens,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
