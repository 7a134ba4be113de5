import { KitError } from '../../errors.js';
import type { Credential } from './types.js';

/**
 * One `auths` entry, the shape Docker's config.json and kit's auth.json share:
 * `auth` is base64(username:password); `identitytoken` an OAuth2 refresh token;
 * `registrytoken` a bearer token for the registry itself.
 */
export interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

function invalid(file: string, key: string, why: string): KitError {
  // Name the file and the key, never the value: it is a secret.
  return new KitError('CREDENTIALS_INVALID', `the credentials for ${JSON.stringify(key)} in ${file} are invalid: ${why}`, {
    hint: `log in again (\`kit login\`), or fix or remove that entry in ${file}`,
  });
}

/** The credential an entry holds; undefined for an empty entry (a placeholder docker writes with credsStore). */
export function entryToCredential(entry: unknown, file: string, key: string): Credential | undefined {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw invalid(file, key, 'the entry is not an object');
  const e = entry as Record<string, unknown>;
  const str = (name: string): string | undefined => {
    const v = e[name];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw invalid(file, key, `"${name}" is not a string`);
    return v;
  };
  const cred: Credential = {};
  const auth = str('auth');
  if (auth !== undefined) {
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (!/^[A-Za-z0-9+/=\s]+$/.test(auth) || colon < 0) throw invalid(file, key, '"auth" is not base64 of username:password');
    cred.username = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    if (password !== '') cred.password = password;
  }
  const username = str('username');
  const password = str('password');
  if (username !== undefined) cred.username = username;
  if (password !== undefined) cred.password = password;
  const identityToken = str('identitytoken');
  const registryToken = str('registrytoken');
  if (identityToken !== undefined) cred.identityToken = identityToken;
  if (registryToken !== undefined) cred.registryToken = registryToken;
  if (!cred.password && !cred.identityToken && !cred.registryToken) return undefined;
  return cred;
}

/** The entry kit writes for a credential. */
export function credentialToEntry(cred: Credential): AuthEntry {
  const entry: AuthEntry = {};
  if (cred.username !== undefined && cred.password !== undefined) {
    entry.auth = Buffer.from(`${cred.username}:${cred.password}`, 'utf8').toString('base64');
  } else if (cred.username !== undefined) {
    entry.username = cred.username;
  }
  if (cred.identityToken) entry.identitytoken = cred.identityToken;
  if (cred.registryToken) entry.registrytoken = cred.registryToken;
  return entry;
}
