/**
 * `kit import --push`: from a fake Hub (standing for the real Hugging Face Hub) straight into a
 * real registry (CNCF distribution, test/integration/harness), never through the local store.
 * Skipped, like the integration suites, where the registry cannot be started.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runKit } from '../helpers/cli.js';
import { FakeHub, MODEL_COMMIT, hubEnv, importKit, modelFiles, modelRepo, sha256Hex } from '../helpers/fake-hub.js';
import { tempDir } from '../helpers/tmp.js';
import { registrySkipReason, startRegistry, type RunningRegistry } from '../integration/harness/registry-server.js';

const skip = await registrySkipReason();

describe('kit import --push to a registry (a fake Hub standing for huggingface.co)', { skip }, () => {
  let hub: FakeHub;
  let reg: RunningRegistry;
  before(async () => {
    hub = await FakeHub.start({ repos: [modelRepo()] });
    reg = await startRegistry();
  });
  after(async () => {
    await hub?.close();
    await reg?.stop();
  });

  it('streams the import to the registry, and a pull gives the Hub bytes with the provenance', async () => {
    const home = await tempDir();
    const ref = `${reg.host}/hf/tiny-model:${MODEL_COMMIT.slice(0, 12)}`;
    const r = await importKit(['test-org/Tiny-Model', '-t', ref, '--push'], home, await hubEnv(hub.url));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Pushed ${ref.replace(/\./g, '\\.')} \\(\\d+ blobs uploaded`));
    assert.equal((await runKit(['list', '--json'], { home })).stdout.trim(), '[]', 'nothing in the local store');

    const other = await tempDir();
    assert.equal((await runKit(['pull', ref], { home: other })).code, 0);
    const inspect = JSON.parse((await runKit(['inspect', ref], { home: other })).stdout) as { manifest: { annotations: Record<string, string> }; config: { config: Record<string, string> } };
    assert.equal(inspect.manifest.annotations['org.opencontainers.image.revision'], MODEL_COMMIT);
    assert.equal(inspect.config.config['paramSize'], '1.2M');
    const out = join(await tempDir(), 'out');
    assert.equal((await runKit(['unpack', ref, '-d', out], { home: other })).code, 0);
    const weights = modelFiles().find((f) => f.path === 'model.safetensors')!;
    assert.equal(sha256Hex(await readFile(join(out, 'model.safetensors'))), sha256Hex(weights.content));
  });
});
