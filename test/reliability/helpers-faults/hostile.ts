/**
 * What every hostile-input test checks, whatever the input: the real CLI refuses with one clear
 * error line (`kit: ...`, no stack trace), exits non-zero, writes nothing outside the target, and
 * leaves the local store as it was (index.json, blob, ingest and upload-session listings).
 *
 * Each test runs in its own workspace:
 *
 *   work/home      KIT_HOME (the store is home/store)
 *   work/outside   a folder with a sentinel file: what an escape would reach first
 *   work/nest/dest the target folder (unpack); absent until kit creates it
 */
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '../../helpers/cli.js';
import { tempDir } from '../../helpers/tmp.js';
import { snapshotTree, diffTrees, type TreeEntry } from '../../helpers/tree.js';
import { sha256 } from '../../../src/oci/digest.js';
import { MediaType, type Descriptor } from '../../../src/oci/descriptor.js';
import type { RegistryClient } from '../../../src/registry/types.js';
import { LocalStore } from '../../../src/store/local-store.js';
import { kit } from './common.js';

export const CORPUS = join(fileURLToPath(import.meta.url), '..', '..', '..', '..', '..', 'fixtures', 'hostile');

export interface Workspace {
  work: string;
  home: string;
  outside: string;
  nest: string;
  dest: string;
}

export async function workspace(): Promise<Workspace> {
  const work = await tempDir('kit-hostile-');
  const ws = { work, home: join(work, 'home'), outside: join(work, 'outside'), nest: join(work, 'nest'), dest: join(work, 'nest', 'dest') };
  await mkdir(ws.home);
  await mkdir(ws.outside);
  await mkdir(ws.nest);
  await writeFile(join(ws.outside, 'sentinel'), 'an escape would reach this file\n');
  return ws;
}

export interface Snapshot {
  index: string;
  blobs: string[];
  ingest: string[];
  uploads: string[];
  outside: Map<string, TreeEntry>;
  work: string[];
  nest: string[];
  tmp: string[];
}

/** Files an absolute-path escape would create: kit-hostile-* in the system temp folder and /tmp. */
async function tmpEscapes(): Promise<string[]> {
  const found = new Set<string>();
  for (const dir of new Set([tmpdir(), '/tmp'])) {
    for (const n of await readdir(dir).catch(() => [] as string[])) if (/^kit-hostile-(absolute|dotdot|annotation)/.test(n)) found.add(join(dir, n));
  }
  return [...found].sort();
}

async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true }).catch(() => [] as string[])).map(String).sort();
}

export async function snapshot(ws: Workspace): Promise<Snapshot> {
  const store = join(ws.home, 'store');
  return {
    index: await readFile(join(store, 'index.json'), 'utf8').catch(() => '(no store)'),
    blobs: await listing(join(store, 'blobs')),
    ingest: await listing(join(store, 'ingest')),
    uploads: await listing(join(store, 'uploads')),
    outside: await snapshotTree(ws.outside),
    work: (await readdir(ws.work)).sort(),
    nest: (await readdir(ws.nest)).filter((n) => n !== 'dest').sort(),
    tmp: await tmpEscapes(),
  };
}

/** Creates the store (an empty layout) so that "unchanged" compares two real states. */
/**
 * Every path below `root` with its type, mode and (regular files only) content hash: unlike
 * snapshotTree, never opens a FIFO or a device.
 */
export async function safeTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const rel of (await readdir(root, { recursive: true })).map(String).sort()) {
    const p = join(root, rel);
    const st = await lstat(p);
    const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? `link:${await readlink(p)}` : st.isFIFO() ? 'fifo' : 'special';
    out.set(rel, `${kind} ${(st.mode & 0o7777).toString(8)}${st.isFile() ? ` ${sha256(await readFile(p))}` : ''}`);
  }
  return out;
}

/** Creates the store (an empty layout, as any kit command would) so that "unchanged" compares two real states. */
export async function initStore(ws: Workspace): Promise<void> {
  await LocalStore.open(join(ws.home, 'store'));
}

export function assertRefused(r: RunResult, message: RegExp, what: string): void {
  assert.notEqual(r.code, 0, `${what}: kit exited 0\n${r.stdout}`);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  // Progress lines (non-TTY `Pulling: ...`) may come first; then exactly one error line.
  const errors = lines.filter((l) => l.startsWith('kit: '));
  assert.equal(errors.length, 1, `${what}: exactly one error line:\n${r.stderr}`);
  const at = lines.indexOf(errors[0]!);
  for (const l of lines.slice(at + 1)) assert.match(l, /^(hint: |  \S)/, `${what}: after the error only a hint or its problem list:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at \S/m, `${what}: no stack trace without -v`);
  assert.match(r.stderr, message, `${what}: the error says why:\n${r.stderr}`);
  // KIT_HOSTILE_LOG=<file>: collect the refusals (what the corpus README quotes).
  if (process.env.KIT_HOSTILE_LOG) appendFileSync(process.env.KIT_HOSTILE_LOG, `${what}\t${errors[0]}\n`);
}

export function assertUnchanged(before: Snapshot, after: Snapshot, what: string): void {
  assert.equal(after.index, before.index, `${what}: index.json changed`);
  assert.deepEqual(after.blobs, before.blobs, `${what}: blobs changed`);
  assert.deepEqual(after.ingest, before.ingest, `${what}: ingest left-overs`);
  assert.deepEqual(after.uploads, before.uploads, `${what}: upload sessions changed`);
  assert.deepEqual(diffTrees(before.outside, after.outside), [], `${what}: the folder outside was touched`);
  assert.deepEqual(after.work, before.work, `${what}: something appeared beside the target`);
  assert.deepEqual(after.nest, before.nest, `${what}: something appeared beside the target`);
  assert.deepEqual(after.tmp, before.tmp, `${what}: a file appeared in the temp folder`);
}

/** Runs kit, then checks the refusal and that nothing changed. */
export async function expectRefusal(ws: Workspace, args: string[], message: RegExp, what: string, env: Record<string, string> = {}): Promise<RunResult> {
  const before = await snapshot(ws);
  const r = await kit(args, ws.home, env);
  assertRefused(r, message, what);
  assertUnchanged(before, await snapshot(ws), what);
  return r;
}

// ---------------------------------------------------------------- raw pushes to a registry

export interface RawLayer {
  mediaType: string;
  bytes: Buffer;
  annotations?: Record<string, string>;
  /** Declared in the manifest instead of the real values. */
  size?: number;
  digest?: string;
}

/** One blob, monolithic, through a bare client (no kit code on the way). */
export async function rawPushBlob(client: RegistryClient, repo: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const post = await client.request({ method: 'POST', url: `/v2/${repo}/blobs/uploads/`, scopes: [] });
  await post.dump();
  assert.equal(post.status, 202, `POST upload: ${post.status}`);
  const loc = new URL(post.headers.location!, post.url);
  loc.searchParams.set('digest', digest);
  const put = await client.request({ method: 'PUT', url: loc.href, headers: { 'content-type': 'application/octet-stream' }, body: bytes, scopes: [] });
  const text = await put.text();
  assert.equal(put.status, 201, `PUT blob: ${put.status} ${text}`);
  return digest;
}

export async function rawPushManifest(client: RegistryClient, repo: string, tag: string, bytes: Buffer, contentType: string = MediaType.ImageManifest): Promise<RegistryResponseInfo> {
  const res = await client.request({ method: 'PUT', url: `/v2/${repo}/manifests/${tag}`, headers: { 'content-type': contentType }, body: bytes, scopes: [] });
  return { status: res.status, text: await res.text() };
}

export interface RegistryResponseInfo {
  status: number;
  text: string;
}

/** A ModelPack-shaped artifact pushed raw: the config and layers as given, the manifest built here. */
export async function rawPushArtifact(
  client: RegistryClient,
  repo: string,
  tag: string,
  layers: RawLayer[],
  opts: { config?: Buffer; configMediaType?: string; manifestExtra?: Record<string, unknown> } = {},
): Promise<{ manifest: Buffer; digest: string }> {
  const descs: Descriptor[] = [];
  for (const l of layers) {
    const digest = await rawPushBlob(client, repo, l.bytes);
    const d: Descriptor = { mediaType: l.mediaType, digest: (l.digest ?? digest) as Descriptor['digest'], size: l.size ?? l.bytes.length };
    if (l.annotations) d.annotations = l.annotations;
    descs.push(d);
  }
  const config = opts.config ?? Buffer.from(JSON.stringify({ descriptor: { name: 'hostile' }, config: {}, modelfs: { type: 'layers', diffIds: descs.map((d) => d.digest) } }));
  const configDigest = await rawPushBlob(client, repo, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ImageManifest,
      artifactType: 'application/vnd.cncf.model.manifest.v1+json',
      config: { mediaType: opts.configMediaType ?? 'application/vnd.cncf.model.config.v1+json', digest: configDigest, size: config.length },
      layers: descs,
      ...opts.manifestExtra,
    }),
  );
  const put = await rawPushManifest(client, repo, tag, manifest);
  assert.equal(put.status, 201, `PUT manifest: ${put.status} ${put.text}`);
  return { manifest, digest: sha256(manifest) };
}
