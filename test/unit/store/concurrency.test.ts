import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ImageIndex } from '../../../src/oci/descriptor.js';
import { LocalStore } from '../../../src/store/local-store.js';
import { tempDir } from '../../helpers/tmp.js';

const WORKER = fileURLToPath(new URL('./concurrent-tagger.js', import.meta.url));
const PROCESSES = 4;
const TAGS_EACH = 25;

/** Runs one worker process; resolves with its exit code and stderr. */
function runWorker(root: string, worker: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, root, String(worker), String(TAGS_EACH)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('LocalStore across processes', () => {
  it(`loses no tag when ${PROCESSES} processes tag the same store at once`, { timeout: 60_000 }, async () => {
    const root = join(await tempDir('kit-store-mp-'), 'store');
    // No open() beforehand: the workers also race to create the layout.
    const results = await Promise.all(Array.from({ length: PROCESSES }, (_, w) => runWorker(root, w)));
    for (const r of results) assert.equal(r.code, 0, r.stderr);

    const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8')) as ImageIndex;
    assert.equal(index.manifests.length, PROCESSES * TAGS_EACH);

    const store = await LocalStore.open(root);
    const refs = (await store.listTags()).map((t) => t.ref);
    const expected: string[] = [];
    for (let w = 0; w < PROCESSES; w++) {
      for (let i = 0; i < TAGS_EACH; i++) expected.push(`localhost:5000/concurrency/w${w}:t${i}`);
    }
    assert.deepEqual(refs, expected.sort());
    const report = await store.verify();
    assert.deepEqual(report.problems, []);
  });
});
