/**
 * Worker for concurrency.test.ts, run as a separate `node` process:
 *   node concurrent-tagger.js <storeRoot> <worker> <count>
 * It writes the same artifact as every other worker (racing on identical blobs) and then adds
 * <count> tags of its own. Without arguments it does nothing, so a test runner that picks it
 * up as a test file sees it pass.
 */
import { LocalStore } from '../../../src/store/local-store.js';
import { makeArtifact } from './fixtures.js';

async function main(): Promise<void> {
  const [root, worker, count] = process.argv.slice(2);
  if (root === undefined || worker === undefined || count === undefined) return;
  const store = await LocalStore.open(root);
  const { manifest } = await makeArtifact(store, ['shared layer', 'second shared layer']);
  for (let i = 0; i < Number(count); i++) {
    await store.tag(manifest, `localhost:5000/concurrency/w${worker}:t${i}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
