import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KitError, errnoCode } from '../../errors.js';
import { entryToCredential } from './auth-entry.js';
import { helperGet } from './helper.js';
import { DOCKER_HUB_SERVER_URL, findEntry, isDockerHub, keyHost } from './hosts.js';
import type { Credential } from './types.js';

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(): string {
  const dir = process.env['DOCKER_CONFIG'] || join(homedir(), '.docker');
  return join(dir, 'config.json');
}

interface DockerConfig {
  auths?: Record<string, unknown>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

async function readDockerConfig(path: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw new KitError('CREDENTIALS_UNREADABLE', `cannot read the Docker config ${path} (${errnoCode(err) ?? (err as Error).message})`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new KitError('CREDENTIALS_INVALID', `the Docker config ${path} is not valid JSON`, {
      hint: `fix ${path}, or point DOCKER_CONFIG at another folder`,
    });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return {};
  const c = json as Record<string, unknown>;
  const obj = (v: unknown): Record<string, unknown> | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const out: DockerConfig = {};
  const auths = obj(c['auths']);
  if (auths) out.auths = auths;
  if (typeof c['credsStore'] === 'string' && c['credsStore'] !== '') out.credsStore = c['credsStore'];
  const helpers = obj(c['credHelpers']);
  if (helpers) out.credHelpers = Object.fromEntries(Object.entries(helpers).filter((e): e is [string, string] => typeof e[1] === 'string'));
  return out;
}

/**
 * The credential Docker's configuration holds for `registry`, the way the docker CLI looks:
 * a per-registry helper (`credHelpers`), else the default store (`credsStore`), else the
 * plain `auths` entry (`auth` / `identitytoken`).
 */
export async function readDockerCredential(registry: string): Promise<Credential | undefined> {
  const path = dockerConfigPath();
  const config = await readDockerConfig(path);
  if (!config) return undefined;
  const authEntry = findEntry(config.auths, registry);
  const helper = findEntry(config.credHelpers, registry)?.[1] ?? config.credsStore;
  if (helper) {
    // Docker stores Docker Hub under its legacy server URL; other registries under the address
    // given to `docker login`, which the auths key records when there is one.
    const serverUrl = isDockerHub(registry) ? DOCKER_HUB_SERVER_URL : authEntry?.[0] ?? keyHost(registry);
    const cred = await helperGet(helper, serverUrl);
    if (cred) return cred;
  }
  return authEntry ? entryToCredential(authEntry[1], path, authEntry[0]) : undefined;
}
