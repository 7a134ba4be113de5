/**
 * model.path naming another artifact: what counts as a reference, which parent an artifact
 * names, and following the chain of parents (loops and the 10-parent limit), on in-memory targets.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { KitError } from '../../../src/errors.js';
import { isArtifactReference, parseKitfile, KitfileError } from '../../../src/kitfile/load.js';
import { sha256 } from '../../../src/oci/digest.js';
import { MediaType, type Descriptor, type ImageManifest } from '../../../src/oci/descriptor.js';
import type { Target } from '../../../src/oci/target.js';
import { MAX_PARENTS, inheritedModelLayers, parentLink, resolveAncestors, type OpenParent } from '../../../src/artifact/lineage.js';
import { resolvePackParent } from '../../../src/artifact/pack-parent.js';
import { tempDir } from '../../helpers/tmp.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('reference detection (model.path)', () => {
  it('is a reference with a registry host and a tag or digest', () => {
    for (const ref of [
      'registry.example.com/team/base:1.0',
      'registry.example.com:5000/team/base:v1',
      'localhost/base:1',
      'localhost:5000/base:v1',
      '127.0.0.1:5000/base/model:1',
      `ghcr.io/org/model@${D}`,
    ]) assert.equal(isArtifactReference(ref), true, ref);
  });

  it('is a path otherwise', () => {
    for (const path of [
      'models/model.gguf',
      'model.safetensors',
      'registry.example.com/team/base', // no tag nor digest: a folder named like a host
      'team/base:1.0', // no registry host: a file with a colon in its name
      'data/x:1',
      './models/x:1',
      'registry.example.com/Team/Base:1.0', // not a valid repository
      'https://registry.example.com/team/base:1.0',
      'registry.example.com/team/base@sha256:short',
    ]) assert.equal(isArtifactReference(path), false, path);
  });

  it('is accepted in model.path only', () => {
    const k = parseKitfile('manifestVersion: 1.0.0\nmodel:\n  path: registry.example.com/team/base:1.0\n', 'Kitfile');
    assert.equal(k.model?.path, 'registry.example.com/team/base:1.0');
    assert.throws(
      () => parseKitfile('manifestVersion: 1.0.0\ndatasets:\n  - path: registry.example.com/team/data:1\n', 'Kitfile'),
      (err: unknown) => err instanceof KitfileError && /only model.path may name another artifact/.test(err.problems[0]!.message),
    );
  });

  it('pack refuses a reference that is also a path in the project', async () => {
    const ctx = await tempDir();
    await mkdir(join(ctx, 'localhost:5000', 'base:v1'), { recursive: true });
    await assert.rejects(
      resolvePackParent('localhost:5000/base:v1', { contextDir: ctx, format: 'modelpack', childName: 'x', open: () => assert.fail('not opened') }),
      (err: unknown) => err instanceof KitError && err.code === 'MODEL_PATH_AMBIGUOUS',
    );
  });
});

// ---- in-memory artifacts

class MemoryTarget implements Target {
  readonly blobs = new Map<string, Buffer>();
  readonly tags = new Map<string, Descriptor>();

  put(bytes: Buffer, mediaType: string): Descriptor {
    const d: Descriptor = { mediaType, digest: sha256(bytes), size: bytes.length };
    this.blobs.set(d.digest, bytes);
    return d;
  }

  async resolve(ref: string): Promise<Descriptor> {
    const at = ref.lastIndexOf('@');
    const byDigest = at >= 0 ? ref.slice(at + 1) : ref.startsWith('sha256:') ? ref : undefined;
    if (byDigest && this.blobs.has(byDigest)) return { mediaType: MediaType.ImageManifest, digest: byDigest as Descriptor['digest'], size: this.blobs.get(byDigest)!.length };
    const d = this.tags.get(ref);
    if (!d) throw new KitError('NOT_FOUND', `${ref} was not found`, { exitCode: 3 });
    return d;
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return this.blobs.has(desc.digest);
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    return Readable.from([this.blobs.get(desc.digest)!]);
  }

  async push(): Promise<void> {}
  async tag(): Promise<void> {}
}

const WEIGHT = 'application/vnd.cncf.model.weight.v1.raw';
const DOC = 'application/vnd.cncf.model.doc.v1.raw';

/** An artifact tagged `ref` whose Kitfile's model.path is `modelPath`, with one layer. */
function artifact(t: MemoryTarget, ref: string, modelPath: string, layer: { mediaType: string; body: string }, annotations: Record<string, string> = {}): Descriptor {
  const l = { ...t.put(Buffer.from(layer.body), layer.mediaType), annotations: { 'org.cncf.model.filepath': `${layer.body}.bin` } };
  const config = t.put(Buffer.from(JSON.stringify({ descriptor: {}, config: {}, modelfs: { type: 'layers', diffIds: [l.digest] } })), 'application/vnd.cncf.model.config.v1+json');
  const m: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ImageManifest,
    config,
    layers: [l],
    annotations: { 'ml.kitops.modelkit.kitfile': `manifestVersion: 1.0.0\nmodel:\n  path: ${modelPath}\n`, ...annotations },
  };
  const d = t.put(Buffer.from(JSON.stringify(m)), MediaType.ImageManifest);
  t.tags.set(ref, d);
  return d;
}

const opener = (t: MemoryTarget): OpenParent => async (reference) => ({ target: t, ref: reference, where: 'remote' });

describe('parentLink', () => {
  const head = (annotations: Record<string, string>, config: unknown = {}, configType = 'application/vnd.cncf.model.config.v1+json') => ({
    manifest: { schemaVersion: 2, mediaType: MediaType.ImageManifest, config: { mediaType: configType, digest: D, size: 1 }, layers: [], annotations } as ImageManifest,
    config,
  });

  it('reads the recorded parent, else the Kitfile\'s model.path, else none', () => {
    assert.deepEqual(parentLink(head({ 'ml.kitops.modelkit.parent': `r.example.com/base@${D}` }), 'x'), { reference: `r.example.com/base@${D}`, via: 'annotation' });
    assert.deepEqual(parentLink(head({ 'ml.kitops.modelkit.kitfile': 'manifestVersion: 1.0.0\nmodel:\n  path: r.example.com/base:1\n' }), 'x'), { reference: 'r.example.com/base:1', via: 'kitfile' });
    assert.deepEqual(parentLink(head({}, { manifestVersion: '1.0.0', model: { path: 'r.example.com/base:2' } }, 'application/vnd.kitops.modelkit.config.v1+json'), 'x'), { reference: 'r.example.com/base:2', via: 'kitfile' });
    assert.equal(parentLink(head({ 'ml.kitops.modelkit.kitfile': 'manifestVersion: 1.0.0\nmodel:\n  path: model.gguf\n' }), 'x'), undefined);
    assert.equal(parentLink(head({ 'ml.kitops.modelkit.kitfile': 'not: [valid' }), 'x'), undefined, 'an unreadable Kitfile names no parent');
  });

  it('refuses a recorded parent that is not pinned by digest', () => {
    assert.throws(() => parentLink(head({ 'ml.kitops.modelkit.parent': 'r.example.com/base:1' }), 'x'), (err: unknown) => err instanceof KitError && err.code === 'PARENT_INVALID');
  });
});

describe('resolveAncestors', () => {
  it('follows the chain, nearest first', async () => {
    const t = new MemoryTarget();
    artifact(t, 'r.example.com/c:1', 'model.bin', { mediaType: WEIGHT, body: 'c' });
    artifact(t, 'r.example.com/b:1', 'r.example.com/c:1', { mediaType: DOC, body: 'b' });
    const a = artifact(t, 'r.example.com/a:1', 'r.example.com/b:1', { mediaType: DOC, body: 'a' });
    const got = await resolveAncestors({ name: 'r.example.com/a:1', digest: a.digest, link: { reference: 'r.example.com/b:1', via: 'kitfile' } }, opener(t));
    assert.deepEqual(got.map((x) => x.reference), ['r.example.com/b:1', 'r.example.com/c:1']);
    assert.deepEqual(inheritedModelLayers(got).map((l) => l.ancestor.reference), ['r.example.com/c:1'], 'only model layers are inherited');
  });

  it('refuses a loop, naming it', async () => {
    const t = new MemoryTarget();
    artifact(t, 'r.example.com/b:1', 'r.example.com/a:1', { mediaType: DOC, body: 'b' });
    const a = artifact(t, 'r.example.com/a:1', 'r.example.com/b:1', { mediaType: DOC, body: 'a' });
    await assert.rejects(
      resolveAncestors({ name: 'r.example.com/a:1', digest: a.digest, link: { reference: 'r.example.com/b:1', via: 'kitfile' } }, opener(t)),
      (err: unknown) => err instanceof KitError && err.code === 'PARENT_LOOP' && err.message === 'artifacts build on one another in a loop: r.example.com/a:1 -> r.example.com/b:1 -> r.example.com/a:1',
    );
    // From outside the loop (a new artifact being packed on it).
    await assert.rejects(
      resolveAncestors({ name: 'r.example.com/new:1', link: { reference: 'r.example.com/a:1', via: 'kitfile' } }, opener(t)),
      (err: unknown) => err instanceof KitError && /loop: r.example.com\/a:1 -> r.example.com\/b:1 -> r.example.com\/a:1 \(reached from r.example.com\/new:1\)$/.test(err.message),
    );
  });

  it(`accepts ${MAX_PARENTS} parents and refuses ${MAX_PARENTS + 1}`, async () => {
    const t = new MemoryTarget();
    const n = MAX_PARENTS + 1;
    artifact(t, `r.example.com/c${n}:1`, 'model.bin', { mediaType: WEIGHT, body: 'w' });
    for (let i = n - 1; i >= 0; i--) artifact(t, `r.example.com/c${i}:1`, `r.example.com/c${i + 1}:1`, { mediaType: DOC, body: `c${i}` });
    const ten = await resolveAncestors({ name: 'r.example.com/c1:1', link: { reference: 'r.example.com/c2:1', via: 'kitfile' } }, opener(t));
    assert.equal(ten.length, MAX_PARENTS);
    await assert.rejects(
      resolveAncestors({ name: 'r.example.com/c0:1', link: { reference: 'r.example.com/c1:1', via: 'kitfile' } }, opener(t)),
      (err: unknown) => err instanceof KitError && err.code === 'PARENT_CHAIN_TOO_DEEP' && err.message.endsWith(`r.example.com/c${n - 1}:1 -> r.example.com/c${n}:1`),
    );
  });

  it('says which artifact names a parent that cannot be found', async () => {
    const t = new MemoryTarget();
    await assert.rejects(
      resolveAncestors({ name: 'r.example.com/a:1', link: { reference: 'r.example.com/gone:1', via: 'kitfile' } }, opener(t)),
      (err: unknown) => err instanceof KitError && err.code === 'PARENT_NOT_FOUND' && err.exitCode === 3 && err.message.startsWith('r.example.com/a:1 builds on r.example.com/gone:1, which cannot be found'),
    );
  });
});
