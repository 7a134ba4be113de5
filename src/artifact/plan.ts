import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { KitError } from '../errors.js';
import type { Kitfile } from '../kitfile/schema.js';
import { normalizeKitfilePath, isArtifactReference } from '../kitfile/load.js';
import type { KitIgnore } from '../kitfile/ignore.js';

/** A matcher that can also say a whole folder is ignored (no `!` pattern can bring a file back). */
type FolderAwareIgnore = KitIgnore & { ignoresWholeDirectory?: (dir: string) => boolean };
import type { TarEntry } from '../layers/tar-writer.js';
import type { ArtifactFormat, ModelPackRole, Section } from './media-types.js';

/**
 * Kitfile + context folder -> the list of layers to build. Walking the folder happens here,
 * once, before any byte is written: every error in the project (a missing path, a symlink
 * that leaves the context, a FIFO) is found before the store is touched.
 */

export type LayerFormat = 'raw' | 'tar';

export interface PlannedLayer {
  section: Section;
  /** Index of the Kitfile entry (parts index for 'modelpart', datasets index, ...). */
  entryIndex: number;
  role: ModelPackRole;
  /** Normalised path relative to the context: the file, or the folder the tar holds. */
  path: string;
  /** raw: one file, stored as-is. tar: the entries, sorted, paths relative to the context. */
  encoding: 'raw' | 'tar';
  entries: TarEntry[];
  /** Bytes of file content this layer reads. */
  contentSize: number;
}

export interface PlanOptions {
  contextDir: string;
  kitfile: Kitfile;
  ignore: FolderAwareIgnore;
  format: ArtifactFormat;
  layerFormat: LayerFormat;
  /**
   * Paths the parent artifact's model occupies (model.path naming an artifact): left out of
   * any entry whose folder holds them, as a path named by another entry is.
   */
  exclude?: string[];
}

/** Weight files by extension; anything else in a model folder is weight configuration. */
const WEIGHT_EXT = /\.(safetensors|gguf|ggml|onnx|pt|pth|bin|ckpt|h5|hdf5|keras|pb|tflite|npz|npy|pkl|pickle|joblib|mlmodel|msgpack|engine|plan|mar|params|caffemodel|pdparams|ot|llamafile)$/i;
const CONFIG_PART_TYPES = new Set(['config', 'tokenizer']);

interface KitfileEntryRef {
  section: Section;
  entryIndex: number;
  path: string;
  partType?: string;
}

/** Every path-bearing entry of the Kitfile, in the order layers are written. */
export function kitfileEntries(k: Kitfile): KitfileEntryRef[] {
  const out: KitfileEntryRef[] = [];
  if (k.model?.path && !isArtifactReference(k.model.path)) {
    out.push({ section: 'model', entryIndex: 0, path: normalizeKitfilePath(k.model.path) });
  }
  k.model?.parts?.forEach((p, i) => {
    const ref: KitfileEntryRef = { section: 'modelpart', entryIndex: i, path: normalizeKitfilePath(p.path) };
    if (p.type !== undefined) ref.partType = p.type;
    out.push(ref);
  });
  k.datasets?.forEach((d, i) => out.push({ section: 'datasets', entryIndex: i, path: normalizeKitfilePath(d.path) }));
  k.code?.forEach((c, i) => out.push({ section: 'code', entryIndex: i, path: normalizeKitfilePath(c.path) }));
  k.docs?.forEach((d, i) => out.push({ section: 'docs', entryIndex: i, path: normalizeKitfilePath(d.path) }));
  k.prompts?.forEach((p, i) => out.push({ section: 'prompts', entryIndex: i, path: normalizeKitfilePath(p.path) }));
  return out;
}

/** True when `child` is `parent` or lies below it, compared by path component. */
export function isWithin(child: string, parent: string): boolean {
  if (parent === '.') return true;
  return child === parent || child.startsWith(`${parent}/`);
}

function sectionRole(section: Section, path: string, partType: string | undefined): ModelPackRole {
  switch (section) {
    case 'model':
      return 'weight';
    case 'modelpart':
      if (partType !== undefined && CONFIG_PART_TYPES.has(partType)) return 'weight.config';
      return WEIGHT_EXT.test(path) || partType === 'weights' ? 'weight' : 'weight.config';
    case 'datasets':
      return 'dataset';
    case 'code':
      return 'code';
    case 'docs':
    case 'prompts':
      return 'doc';
  }
}

export async function planLayers(opts: PlanOptions): Promise<PlannedLayer[]> {
  const ctxReal = await realpath(opts.contextDir).catch((e: unknown) => {
    throw new KitError('CONTEXT_NOT_FOUND', `context folder ${opts.contextDir} cannot be read: ${(e as Error).message}`);
  });
  const entries = kitfileEntries(opts.kitfile);
  const walker = new ContextWalker(opts.contextDir, ctxReal, opts.ignore);
  const layers: PlannedLayer[] = [];

  for (const entry of entries) {
    // Paths claimed by another, more specific entry are left out of this one.
    const nested = [
      ...entries.filter((o) => o !== entry && o.path !== entry.path && isWithin(o.path, entry.path)).map((o) => o.path),
      ...(opts.exclude ?? []).filter((p) => p !== entry.path && isWithin(p, entry.path)),
    ];
    const fieldName = entry.section === 'modelpart' ? `model.parts[${entry.entryIndex}].path` : entry.section === 'model' ? 'model.path' : `${entry.section}[${entry.entryIndex}].path`;
    const tree = await walker.collect(entry.path, nested, fieldName);
    const isFile = tree.length === 1 && tree[0]!.type === 'file' && tree[0]!.path === entry.path;

    // A model folder becomes one layer per file, so that a changed shard changes one layer
    // (ModelPack only: a KitOps ModelKit keeps one layer per Kitfile entry).
    if (!isFile && entry.section === 'model' && opts.format === 'modelpack') {
      for (const f of tree.filter((e) => e.type === 'file')) {
        const role: ModelPackRole = WEIGHT_EXT.test(f.path) ? 'weight' : 'weight.config';
        layers.push(fileLayer(entry, role, f, opts.layerFormat));
      }
      continue;
    }
    const role = sectionRole(entry.section, entry.path, entry.partType);
    if (isFile) {
      layers.push(fileLayer(entry, role, tree[0]!, opts.format === 'kitops' ? 'tar' : opts.layerFormat));
    } else {
      layers.push({
        section: entry.section,
        entryIndex: entry.entryIndex,
        role,
        path: entry.path,
        encoding: 'tar',
        entries: tree,
        contentSize: tree.reduce((n, e) => n + e.size, 0),
      });
    }
  }
  return layers;
}

function fileLayer(entry: KitfileEntryRef, role: ModelPackRole, file: TarEntry, layerFormat: LayerFormat): PlannedLayer {
  return {
    section: entry.section,
    entryIndex: entry.entryIndex,
    role,
    path: file.path,
    encoding: layerFormat,
    entries: [file],
    contentSize: file.size,
  };
}

/**
 * Walks the context folder, following symlinks that stay inside it and refusing those that
 * leave it (never dropping them silently), honouring .kitignore.
 */
class ContextWalker {
  constructor(
    private readonly contextDir: string,
    private readonly ctxReal: string,
    private readonly ignore: FolderAwareIgnore,
  ) {}

  async collect(relPath: string, excluded: string[], field: string): Promise<TarEntry[]> {
    const abs = relPath === '.' ? this.contextDir : join(this.contextDir, ...relPath.split('/'));
    let st: Stats;
    try {
      st = await lstat(abs);
    } catch {
      throw new KitError('PATH_NOT_FOUND', `${field}: ${relPath} does not exist in ${this.contextDir}`, {
        hint: 'fix the path in the Kitfile (paths are relative to the context folder)',
      });
    }
    const out: TarEntry[] = [];
    const real = await this.resolveInside(abs, relPath, st);
    const target = st.isSymbolicLink() ? await stat(real) : st;
    if (target.isFile()) {
      out.push(this.fileEntry(relPath, real, target));
    } else if (target.isDirectory()) {
      await this.walkDir(relPath, real, target, excluded, out, new Set([real]));
    } else {
      throw specialFile(relPath, target);
    }
    out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return out;
  }

  private async walkDir(rel: string, absReal: string, st: Stats, excluded: string[], out: TarEntry[], stack: Set<string>): Promise<void> {
    if (rel !== '.') out.push({ path: rel, absPath: absReal, type: 'directory', size: 0, executable: true });
    const names = (await readdir(absReal)).sort();
    for (const name of names) {
      const childRel = rel === '.' ? name : `${rel}/${name}`;
      if (excluded.some((x) => isWithin(childRel, x))) continue;
      const childAbs = join(absReal, name);
      const cst = await lstat(childAbs);
      const ignored = this.ignore.ignores(childRel);
      if (ignored && !cst.isDirectory()) continue;
      if (ignored && cst.isDirectory()) {
        if (this.ignore.ignoresWholeDirectory?.(childRel) === true) continue;
        // An ignored folder may still hold files re-included by a `!` pattern.
        const inner: TarEntry[] = [];
        await this.walkDir(childRel, childAbs, cst, excluded, inner, stack);
        const kept = inner.filter((e) => e.path !== childRel);
        if (kept.length > 0) out.push(...inner);
        continue;
      }
      const real = await this.resolveInside(childAbs, childRel, cst);
      const target = cst.isSymbolicLink() ? await stat(real) : cst;
      if (target.isFile()) {
        out.push(this.fileEntry(childRel, real, target));
      } else if (target.isDirectory()) {
        if (stack.has(real)) {
          throw new KitError('SYMLINK_LOOP', `${childRel} is a symlink loop (it leads back to a folder that contains it)`, {
            hint: 'remove the link or add it to .kitignore',
          });
        }
        stack.add(real);
        await this.walkDir(childRel, real, target, excluded, out, stack);
        stack.delete(real);
      } else {
        throw specialFile(childRel, target);
      }
    }
    void st;
  }

  /** The real path of `abs`; a symlink must lead to something inside the context. */
  private async resolveInside(abs: string, rel: string, st: Stats): Promise<string> {
    if (!st.isSymbolicLink()) return abs;
    let real: string;
    try {
      real = await realpath(abs);
    } catch {
      throw new KitError('SYMLINK_BROKEN', `${rel} is a symlink to something that does not exist`, {
        hint: 'fix or remove the link, or add it to .kitignore',
      });
    }
    const r = relative(this.ctxReal, real);
    if (r === '..' || r.startsWith(`..${sep}`) || r.startsWith(sep) || /^[a-zA-Z]:/.test(r)) {
      throw new KitError('SYMLINK_ESCAPES', `${rel} is a symlink that leads outside the context folder (to ${real})`, {
        hint: 'copy the file into the project, or add the link to .kitignore',
      });
    }
    return real;
  }

  private fileEntry(rel: string, absReal: string, st: Stats): TarEntry {
    return { path: rel, absPath: absReal, type: 'file', size: st.size, executable: (st.mode & 0o111) !== 0 };
  }
}

function specialFile(rel: string, st: Stats): KitError {
  const kind = st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a regular file';
  return new KitError('SPECIAL_FILE', `${rel} is ${kind} and cannot be packed`, {
    hint: 'pack regular files and folders only; add it to .kitignore',
  });
}
