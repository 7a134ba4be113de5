import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { KitError, errnoCode } from '../errors.js';
import type { RegistrySettings } from './types.js';

/**
 * kit's configuration folder: `$KIT_CONFIG_HOME`, else `$XDG_CONFIG_HOME/kit`, else
 * `~/.config/kit`. It holds `auth.json` (credentials) and `registries.json` (connection
 * settings). A relative `XDG_CONFIG_HOME` is ignored, as the XDG base-directory spec says.
 */
export function kitConfigDir(): string {
  const explicit = process.env['KIT_CONFIG_HOME'];
  if (explicit) return resolve(explicit);
  const xdg = process.env['XDG_CONFIG_HOME'];
  if (xdg && isAbsolute(xdg)) return join(xdg, 'kit');
  return join(homedir(), '.config', 'kit');
}

export function registrySettingsPath(): string {
  return join(kitConfigDir(), 'registries.json');
}

/** The key a registry is filed under: lower-case host[:port], Docker Hub as `docker.io`. */
export function registryKey(registry: string): string {
  const r = registry.trim().toLowerCase();
  return r === 'index.docker.io' || r === 'registry-1.docker.io' ? 'docker.io' : r;
}

/**
 * Writes a file so that readers see the old or the new content, never a torn one: a unique
 * temp file beside it (created with `mode`, so a secret is never world-readable even for an
 * instant), fsync, rename over. The folder is created with mode 0700 when missing.
 */
export async function writeFileAtomic(path: string, content: string, mode: number): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(temp, 'wx', mode);
  try {
    try {
      await fh.writeFile(content, 'utf8');
      // open() applies the umask; chmod makes the mode exact whatever the umask is.
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  // Flush the directory entry so the rename survives a crash; not all filesystems allow it.
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* best effort */
  }
}

const SettingsSchema = z
  .object({
    plainHttp: z.boolean().optional(),
    tlsVerify: z.boolean().optional(),
    caCert: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    proxy: z.string().min(1).optional(),
  })
  .strict();

const FileSchema = z
  .object({ registries: z.record(z.string(), SettingsSchema).default({}) })
  .passthrough();

type SettingsFile = z.infer<typeof FileSchema>;

function invalidFile(path: string, why: string, cause?: unknown): KitError {
  return new KitError('SETTINGS_INVALID', `the registry settings file ${path} is invalid: ${why}`, {
    hint: 'fix or remove the file; its shape is {"registries": {"host:port": {"plainHttp": false, "tlsVerify": true, "caCert": "/path/ca.pem"}}}',
    cause,
  });
}

async function readSettingsFile(path: string): Promise<SettingsFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { registries: {} };
    throw new KitError('SETTINGS_UNREADABLE', `cannot read the registry settings file ${path}: ${errnoCode(err) ?? (err as Error).message}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalidFile(path, `not valid JSON (${(err as Error).message})`, err);
  }
  const parsed = FileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.') + ': ' : '';
    throw invalidFile(path, `${where}${issue?.message ?? 'unexpected shape'}`);
  }
  return parsed.data;
}

/**
 * Settings for one registry from `<config>/registries.json`; `{}` when there are none. Relative
 * certificate paths are taken relative to the settings file's folder, so the file means the same
 * thing whatever the working directory.
 */
export async function loadRegistrySettings(registry: string): Promise<RegistrySettings> {
  const path = registrySettingsPath();
  const file = await readSettingsFile(path);
  const key = registryKey(registry);
  const found = Object.entries(file.registries).find(([k]) => registryKey(k) === key)?.[1];
  if (!found) return {};
  const out: RegistrySettings = { ...found };
  for (const f of ['caCert', 'cert', 'key'] as const) {
    const p = out[f];
    if (p !== undefined) out[f] = resolve(dirname(path), p);
  }
  return out;
}

/**
 * Replaces the settings of one registry (an empty object removes the entry) and writes the file
 * atomically. Returns the file path.
 */
export async function saveRegistrySettings(registry: string, settings: RegistrySettings): Promise<string> {
  const path = registrySettingsPath();
  const parsed = SettingsSchema.safeParse(settings);
  if (!parsed.success) throw new KitError('SETTINGS_INVALID', `invalid settings for ${registry}: ${parsed.error.issues[0]?.message ?? 'unexpected shape'}`);
  const file = await readSettingsFile(path);
  const key = registryKey(registry);
  const registries: Record<string, RegistrySettings> = {};
  for (const [k, v] of Object.entries(file.registries)) if (registryKey(k) !== key) registries[k] = v;
  const clean = Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined));
  if (Object.keys(clean).length > 0) registries[key] = clean;
  await writeFileAtomic(path, JSON.stringify({ ...file, registries }, null, 2) + '\n', 0o600);
  return path;
}
