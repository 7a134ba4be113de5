/**
 * `kit init` fills the ModelPack fields the same way `kit import` does, from local files only:
 * safetensors headers (paramSize, precision), config.json (architecture) and the README's model
 * card; `kit pack` then carries them into the ModelPack config.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runKit } from '../helpers/cli.js';
import { MODEL_CARD, modelWeights } from '../helpers/fake-hub.js';
import { tempDir } from '../helpers/tmp.js';

describe('kit init fills paramSize, precision, architecture and format', () => {
  it('from safetensors headers, config.json and the README model card', async () => {
    const dir = join(await tempDir(), 'tiny');
    await mkdir(join(dir, 'model'), { recursive: true });
    await writeFile(join(dir, 'README.md'), MODEL_CARD);
    await writeFile(join(dir, 'model', 'model.safetensors'), modelWeights());
    await writeFile(join(dir, 'model', 'config.json'), JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama', torch_dtype: 'bfloat16' }));
    const home = await tempDir();
    const init = await runKit(['init', dir], { home });
    assert.equal(init.code, 0, init.stderr);
    const kitfile = await readFile(join(dir, 'Kitfile'), 'utf8');
    for (const line of ['format: safetensors', 'framework: pytorch', 'paramSize: 1.2M', 'precision: bf16', 'architecture: LlamaForCausalLM', 'license: Apache-2.0', 'baseModel: org/base-model']) {
      assert.ok(kitfile.includes(line), `${line} in\n${kitfile}`);
    }
    assert.equal((await runKit(['pack', dir, '-t', 'x.io/init/tiny:1'], { home })).code, 0);
    const inspect = JSON.parse((await runKit(['inspect', 'x.io/init/tiny:1'], { home })).stdout) as { config: { config: Record<string, string>; descriptor: Record<string, unknown> } };
    assert.deepEqual(inspect.config.config, { format: 'safetensors', architecture: 'LlamaForCausalLM', paramSize: '1.2M', precision: 'bf16' });
    assert.deepEqual(inspect.config.descriptor['licenses'], ['Apache-2.0']);
    assert.equal(inspect.config.descriptor['sourceURL'], undefined, 'no provenance invented for a local project');
  });
});
