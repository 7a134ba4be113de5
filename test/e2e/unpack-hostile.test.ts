import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runKit } from '../helpers/cli.js';
import { craftArtifact, makeTar, type CraftLayer, type TarItem } from '../helpers/craft.js';
import { tempDir } from '../helpers/tmp.js';

const TAR = 'application/vnd.cncf.model.dataset.v1.tar';
const RAW = 'application/vnd.cncf.model.weight.v1.raw';

async function tarLayer(items: TarItem[]): Promise<CraftLayer> {
  return { mediaType: TAR, content: await makeTar(items), annotations: { 'org.cncf.model.filepath': 'data' } };
}

const cases: Array<{ name: string; layers: () => Promise<CraftLayer[]>; message: RegExp }> = [
  {
    name: 'a filepath annotation that is absolute',
    layers: async () => [{ mediaType: RAW, content: Buffer.from('x'), annotations: { 'org.cncf.model.filepath': '/tmp/kit-evil-abs' } }],
    message: /absolute|unsafe|outside/i,
  },
  {
    name: 'a filepath annotation that climbs out with ..',
    layers: async () => [{ mediaType: RAW, content: Buffer.from('x'), annotations: { 'org.cncf.model.filepath': '../evil' } }],
    message: /\.\.|unsafe|outside/i,
  },
  {
    name: 'a tar entry with ..',
    layers: async () => [await tarLayer([{ name: 'data', type: 'directory' }, { name: 'data/../../evil', body: 'x' }])],
    message: /\.\.|unsafe|outside/i,
  },
  {
    name: 'a tar entry with an absolute path',
    layers: async () => [await tarLayer([{ name: '/tmp/kit-evil-abs-tar', body: 'x' }])],
    message: /absolute|unsafe|outside/i,
  },
  {
    name: 'a symlink leading out',
    layers: async () => [await tarLayer([{ name: 'data', type: 'directory' }, { name: 'data/link', type: 'symlink', linkname: '../../outside' }])],
    message: /symlink|link|outside/i,
  },
  {
    name: 'a symlink followed by a file written through it',
    layers: async () => [
      await tarLayer([
        { name: 'data', type: 'directory' },
        { name: 'data/link', type: 'symlink', linkname: '../../outside' },
        { name: 'data/link/evil', body: 'x' },
      ]),
    ],
    message: /symlink|link|outside/i,
  },
  {
    name: 'a hard link leading out',
    layers: async () => [await tarLayer([{ name: 'data', type: 'directory' }, { name: 'data/hard', type: 'link', linkname: '../outside/sentinel' }])],
    message: /link|outside|unsafe/i,
  },
  {
    name: 'a device file',
    layers: async () => [await tarLayer([{ name: 'data', type: 'directory' }, { name: 'data/null', type: 'character-device', devmajor: 1, devminor: 3 }])],
    message: /device|unsafe/i,
  },
  {
    name: 'a FIFO',
    layers: async () => [await tarLayer([{ name: 'data', type: 'directory' }, { name: 'data/pipe', type: 'fifo' }])],
    message: /fifo|unsafe/i,
  },
];

describe('unpack refuses hostile artifacts before writing outside the target', () => {
  for (const c of cases) {
    it(`refuses ${c.name}`, async () => {
      const work = await tempDir();
      const home = join(work, 'home');
      const outside = join(work, 'outside');
      await mkdir(outside);
      await mkdir(join(work, 'nest'));
      const dest = join(work, 'nest', 'dest');
      await craftArtifact(join(home, 'store'), 'x.io/evil/model:1', await c.layers());
      const indexBefore = await readFile(join(home, 'store', 'index.json'), 'utf8');

      const r = await runKit(['unpack', 'x.io/evil/model:1', '-d', dest], { home });
      assert.notEqual(r.code, 0);
      const lines = r.stderr.trim().split('\n');
      assert.match(lines[0]!, /^kit: /);
      assert.match(r.stderr, c.message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace without -v');
      assert.deepEqual(await readdir(outside), []);
      assert.deepEqual((await readdir(work)).sort(), ['home', 'nest', 'outside']);
      assert.deepEqual((await readdir(join(work, 'nest'))).filter((n) => n !== 'dest'), []);
      await assert.rejects(readFile('/tmp/kit-evil-abs'));
      await assert.rejects(readFile('/tmp/kit-evil-abs-tar'));
      assert.equal(await readFile(join(home, 'store', 'index.json'), 'utf8'), indexBefore);
    });
  }
});
