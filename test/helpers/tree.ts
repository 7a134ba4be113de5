import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  sha256?: string;
  target?: string;
}

/** Every path below `root` with its type, permission bits and content hash. */
export async function snapshotTree(root: string, skip: (rel: string) => boolean = () => false): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  async function walk(rel: string): Promise<void> {
    const names = (await readdir(join(root, rel))).sort();
    for (const name of names) {
      const r = rel === '' ? name : `${rel}/${name}`;
      if (skip(r)) continue;
      const abs = join(root, r);
      const st = await lstat(abs);
      if (st.isSymbolicLink()) out.set(r, { type: 'symlink', mode: 0, target: await readlink(abs) });
      else if (st.isDirectory()) {
        out.set(r, { type: 'dir', mode: st.mode & 0o777 });
        await walk(r);
      } else out.set(r, { type: 'file', mode: st.mode & 0o777, sha256: createHash('sha256').update(await readFile(abs)).digest('hex') });
    }
  }
  await walk('');
  return out;
}

/** Human-readable differences between two snapshots (empty when identical). */
export function diffTrees(expected: Map<string, TreeEntry>, actual: Map<string, TreeEntry>): string[] {
  const diffs: string[] = [];
  for (const [p, e] of expected) {
    const a = actual.get(p);
    if (!a) diffs.push(`missing: ${p}`);
    else if (JSON.stringify(a) !== JSON.stringify(e)) diffs.push(`differs: ${p} expected ${JSON.stringify(e)} got ${JSON.stringify(a)}`);
  }
  for (const p of actual.keys()) if (!expected.has(p)) diffs.push(`unexpected: ${p}`);
  return diffs;
}

/** What packing fixtures/example must restore: everything but .kitignore and ignored byte code. */
export function exampleSkip(rel: string): boolean {
  return rel === '.kitignore' || rel.split('/').includes('__pycache__');
}
