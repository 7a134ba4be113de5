import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KitError, errnoCode } from '../../errors.js';
import { kitConfigDir, writeFileAtomic } from '../settings.js';
import { credentialToEntry, entryToCredential } from './auth-entry.js';
import { canonicalRegistry, findEntry, keyMatches } from './hosts.js';
import { hasSecret, type Credential } from './types.js';

/**
 * kit's own credential file, `<kit config dir>/auth.json`, in Docker's config shape
 * (`{"auths": {"host": {"auth": base64(user:pass)}}}`) so it reads like what users know.
 * Written with mode 0600, atomically; other top-level keys are kept as they are.
 */
export function kitAuthPath(): string {
  return join(kitConfigDir(), 'auth.json');
}

interface AuthFile {
  auths: Record<string, unknown>;
  [other: string]: unknown;
}

async function readAuthFile(path: string): Promise<AuthFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { auths: {} };
    throw new KitError('CREDENTIALS_UNREADABLE', `cannot read the credentials file ${path} (${errnoCode(err) ?? (err as Error).message})`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // The parser's message may quote the file's content, which is secret: leave it out.
    throw new KitError('CREDENTIALS_INVALID', `the credentials file ${path} is not valid JSON`, {
      hint: `fix or remove ${path}, then log in again with \`kit login\``,
    });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new KitError('CREDENTIALS_INVALID', `the credentials file ${path} is not a JSON object`, { hint: `fix or remove ${path}` });
  }
  const file = json as Record<string, unknown>;
  const auths = file['auths'] ?? {};
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) {
    throw new KitError('CREDENTIALS_INVALID', `"auths" in the credentials file ${path} is not an object`, { hint: `fix or remove ${path}` });
  }
  return { ...file, auths: auths as Record<string, unknown> };
}

/** The credential kit's own file holds for `registry`, if any. */
export async function readKitCredential(registry: string): Promise<Credential | undefined> {
  const path = kitAuthPath();
  const file = await readAuthFile(path);
  const found = findEntry(file.auths, registry);
  return found ? entryToCredential(found[1], path, found[0]) : undefined;
}

/**
 * Stores the credential for `registry` in kit's file (replacing any entry under an alias of
 * the same registry) and returns the file path.
 */
export async function saveCredential(registry: string, cred: Credential): Promise<string> {
  if (!hasSecret(cred)) {
    throw new KitError('CREDENTIALS_INVALID', `nothing to store for ${registry}: a password or token is needed`, {
      hint: 'pass the password or token on standard input (--password-stdin)',
    });
  }
  const path = kitAuthPath();
  const file = await readAuthFile(path);
  const auths: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(file.auths)) if (!keyMatches(k, registry)) auths[k] = v;
  auths[canonicalRegistry(registry)] = credentialToEntry(cred);
  await writeFileAtomic(path, JSON.stringify({ ...file, auths }, null, 2) + '\n', 0o600);
  return path;
}

/** Removes every entry kit's file holds for `registry`; false when there was none. */
export async function removeCredential(registry: string): Promise<boolean> {
  const path = kitAuthPath();
  const file = await readAuthFile(path);
  const keys = Object.keys(file.auths).filter((k) => keyMatches(k, registry));
  if (keys.length === 0) return false;
  const auths = { ...file.auths };
  for (const k of keys) delete auths[k];
  await writeFileAtomic(path, JSON.stringify({ ...file, auths }, null, 2) + '\n', 0o600);
  return true;
}
