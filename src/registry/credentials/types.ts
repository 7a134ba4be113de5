/**
 * What kit may authenticate with at one registry. Either a username and password, or an
 * identity token (an OAuth2 refresh token, as `docker login` stores for Docker Hub and ACR),
 * or a registry token sent to the registry as is (docker's `registrytoken`).
 */
export interface Credential {
  username?: string;
  password?: string;
  identityToken?: string;
  registryToken?: string;
}

/** Resolves the credential for a registry (host[:port] as in references); undefined: anonymous. */
export type CredentialSource = (registry: string) => Promise<Credential | undefined>;

/** True when the credential carries anything to authenticate with. */
export function hasSecret(cred: Credential | undefined): cred is Credential {
  return !!cred && !!(cred.password || cred.identityToken || cred.registryToken);
}
