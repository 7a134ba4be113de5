/**
 * Naming a Hub repository, and the settings that say where the Hub is and who we are to it.
 *
 * Accepted forms: `org/name`, `name` (legacy canonical repositories), `hf://org/name`,
 * `hf://models/org/name`, `hf://datasets/org/name`, and Hub URLs such as
 * `https://huggingface.co/org/name`, `https://huggingface.co/datasets/org/name/tree/v1.0`
 * (a revision in the URL is used when --revision is not given).
 *
 * Environment, as huggingface_hub reads it (constants.py, utils/_auth.py):
 *   HF_ENDPOINT             the Hub's base URL (mirrors, self-hosted hubs); default https://huggingface.co
 *   HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then the token file: HF_TOKEN_PATH, else $HF_HOME/token,
 *                           HF_HOME defaulting to $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface
 *   HF_HUB_OFFLINE          1/true/yes/on: never touch the network
 *   HF_HUB_CACHE            huggingface_hub's download cache (default $HF_HOME/hub), read for reuse
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { ExitCode, KitError, errnoCode } from '../errors.js';

export type RepoType = 'model' | 'dataset';

export interface RepoSpec {
  type: RepoType;
  /** `org/name` (or a legacy single `name`), as the Hub spells it. */
  id: string;
  /** A revision named inside a Hub URL (`/tree/<rev>`), if any. */
  revision?: string;
  /** The origin of a full URL naming a host other than the configured Hub. */
  origin?: string;
}

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
const HUB_HOSTS = new Set(['huggingface.co', 'www.huggingface.co', 'hf.co']);
/** The Hub's rule for each part of a repository id: word characters, `.` and `-`, at most 96. */
const ID_PART = /^[A-Za-z0-9_][\w.-]{0,95}$/;

function usage(input: string, why: string): KitError {
  return new KitError('HF_REPO_INVALID', `cannot read ${JSON.stringify(input)} as a Hugging Face repository: ${why}`, {
    hint: 'use org/name, hf://org/name, hf://datasets/org/name or https://huggingface.co/org/name',
    exitCode: ExitCode.usage,
  });
}

function checkId(input: string, parts: string[]): string {
  if (parts.length < 1 || parts.length > 2) throw usage(input, 'expected org/name');
  for (const p of parts) {
    if (!ID_PART.test(p) || /[.-]$/.test(p) || p.includes('--') || p.includes('..')) throw usage(input, `${JSON.stringify(p)} is not a valid repository name part`);
  }
  return parts.join('/');
}

/** Parse the REPO argument of `kit import`. */
export function parseRepoSpec(input: string): RepoSpec {
  const s = input.trim();
  if (s === '') throw usage(input, 'it is empty');
  if (s.startsWith('hf://')) {
    let rest = s.slice('hf://'.length).replace(/\/+$/, '');
    let type: RepoType = 'model';
    const at = rest.indexOf('@');
    let revision: string | undefined;
    if (at >= 0) {
      revision = decodeURIComponent(rest.slice(at + 1));
      rest = rest.slice(0, at);
    }
    if (rest.startsWith('datasets/')) {
      type = 'dataset';
      rest = rest.slice('datasets/'.length);
    } else if (rest.startsWith('models/')) {
      rest = rest.slice('models/'.length);
    } else if (rest.startsWith('spaces/')) {
      throw usage(input, 'Spaces are applications, not models or datasets');
    }
    const spec: RepoSpec = { type, id: checkId(input, rest.split('/')) };
    if (revision) spec.revision = revision;
    return spec;
  }
  if (/^https?:\/\//i.test(s)) {
    let url: URL;
    try {
      url = new URL(s);
    } catch {
      throw usage(input, 'not a valid URL');
    }
    const segs = url.pathname.split('/').filter((x) => x !== '').map((x) => decodeURIComponent(x));
    let type: RepoType = 'model';
    if (segs[0] === 'datasets') {
      type = 'dataset';
      segs.shift();
    } else if (segs[0] === 'models') {
      segs.shift();
    } else if (segs[0] === 'spaces') {
      throw usage(input, 'Spaces are applications, not models or datasets');
    }
    // org/name[/tree|blob|resolve/<rev>[/...]]
    const markers = ['tree', 'blob', 'resolve'];
    const markerAt = segs.findIndex((x, i) => i > 0 && markers.includes(x));
    const idParts = markerAt > 0 ? segs.slice(0, markerAt) : segs;
    const spec: RepoSpec = { type, id: checkId(input, idParts) };
    if (markerAt > 0 && segs[markerAt + 1]) spec.revision = segs[markerAt + 1]!;
    if (!HUB_HOSTS.has(url.hostname.toLowerCase())) spec.origin = url.origin;
    return spec;
  }
  if (s.includes('://')) throw usage(input, 'only hf:// and http(s):// are understood');
  const rest = s.replace(/\/+$/, '');
  if (rest.startsWith('datasets/') && rest.split('/').length === 3) return { type: 'dataset', id: checkId(input, rest.split('/').slice(1)) };
  return { type: 'model', id: checkId(input, rest.split('/')) };
}

/** `org/name` or `datasets/org/name`: the repository's path on the Hub's web side. */
export function repoPath(spec: Pick<RepoSpec, 'type' | 'id'>): string {
  return spec.type === 'dataset' ? `datasets/${spec.id}` : spec.id;
}

/** Encode each segment of a repository path (file names may hold spaces, `#`, `?`...). */
export function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

export interface HubSettings {
  /** Base URL without a trailing slash. */
  endpoint: string;
  token?: string;
  /** Where the token came from, for messages (never the token itself). */
  tokenSource?: string;
  offline: boolean;
  /** huggingface_hub's cache folder (read only). */
  hfHubCache: string;
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());
}

function hfHome(env: NodeJS.ProcessEnv): string {
  const explicit = env['HF_HOME'];
  if (explicit) return explicit.startsWith('~') ? join(homedir(), explicit.slice(1)) : explicit;
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'huggingface');
}

/** The token file huggingface_hub writes on `hf auth login`. */
export function tokenFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return env['HF_TOKEN_PATH'] || join(hfHome(env), 'token');
}

/**
 * Settings from the environment (and an explicit token from --token, which wins). The endpoint
 * must be an http(s) URL; a token is never read from anywhere else.
 */
export async function hubSettings(opts: { token?: string } = {}, env: NodeJS.ProcessEnv = process.env): Promise<HubSettings> {
  const raw = (env['HF_ENDPOINT'] || DEFAULT_ENDPOINT).trim().replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    url = new URL('invalid:');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new KitError('HF_ENDPOINT_INVALID', `HF_ENDPOINT=${JSON.stringify(raw)} is not an http(s) URL`, {
      hint: 'set it to the base URL of the Hub or mirror, e.g. https://huggingface.co',
      exitCode: ExitCode.usage,
    });
  }
  const settings: HubSettings = {
    endpoint: raw,
    offline: truthy(env['HF_HUB_OFFLINE']),
    hfHubCache: env['HF_HUB_CACHE'] || env['HUGGINGFACE_HUB_CACHE'] || join(hfHome(env), 'hub'),
  };
  const fromFlag = opts.token?.trim();
  if (fromFlag) return { ...settings, token: fromFlag, tokenSource: '--token' };
  for (const name of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']) {
    const v = env[name]?.trim();
    if (v) return { ...settings, token: v, tokenSource: name };
  }
  const file = tokenFilePath(env);
  try {
    const v = (await readFile(file, 'utf8')).trim();
    if (v) return { ...settings, token: v, tokenSource: file };
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR' && errnoCode(err) !== 'EISDIR') {
      throw new KitError('HF_TOKEN_UNREADABLE', `cannot read the Hugging Face token file ${file} (${errnoCode(err) ?? (err as Error).message})`, {
        hint: 'fix its permissions, or pass the token in HF_TOKEN',
        cause: err,
      });
    }
  }
  return settings;
}
