import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

const created: string[] = [];

// Registered once, when a test file first imports this module: at that point `after` binds to
// the file's root test, so folders made inside hooks live until the whole file is done.
after(() => Promise.all(created.map((d) => rm(d, { recursive: true, force: true }))));

/** A fresh temporary folder, removed when the test file finishes. */
export async function tempDir(prefix = 'kit-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}
