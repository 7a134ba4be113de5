import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { seededBytes } from './rng.js';

/**
 * A project of `shards` weight files of `shardMiB` MiB each (seeded content: each its own raw
 * layer), a small dataset folder (a tar layer) and a README, with its Kitfile.
 */
export async function makeProject(dir: string, opts: { shards: number; shardMiB: number; seed: number }): Promise<{ dir: string; bytes: number }> {
  await mkdir(join(dir, 'models'), { recursive: true });
  await mkdir(join(dir, 'data'), { recursive: true });
  let bytes = 0;
  const parts: string[] = [];
  for (let i = 1; i <= opts.shards; i++) {
    const name = `model-${String(i).padStart(5, '0')}-of-${String(opts.shards).padStart(5, '0')}.safetensors`;
    const size = Math.round(opts.shardMiB * 1024 * 1024);
    await writeFile(join(dir, 'models', name), seededBytes(size, opts.seed * 1000 + i));
    bytes += size;
    parts.push(name);
  }
  for (let i = 0; i < 4; i++) {
    const rows = Array.from({ length: 200 }, (_, r) => `${r},sample ${opts.seed}-${i}-${r},${r % 2}`).join('\n');
    await writeFile(join(dir, 'data', `part-${i}.csv`), `id,text,label\n${rows}\n`);
  }
  await writeFile(join(dir, 'README.md'), `# reliability fixture ${opts.seed}\n`);
  const kitfile = [
    'manifestVersion: 1.0.0',
    'package:',
    `  name: reliability-${opts.seed}`,
    '  authors: [kit tests]',
    'model:',
    '  name: sharded',
    '  path: models',
    'datasets:',
    '  - name: samples',
    '    path: data',
    'docs:',
    '  - path: README.md',
    '',
  ].join('\n');
  await writeFile(join(dir, 'Kitfile'), kitfile);
  return { dir, bytes };
}
