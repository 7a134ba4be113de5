import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { buildModelPackConfig } from '../../../src/artifact/configs.js';
import { generateKitfile } from '../../../src/kitfile/init.js';
import { parseKitfile, serializeKitfile } from '../../../src/kitfile/load.js';
import { safetensorsFile } from '../../helpers/fake-hub.js';
import { tempDir } from '../../helpers/tmp.js';

async function makeTree(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, rel)), { recursive: true });
    await writeFile(join(root, rel), content);
  }
}

const CARD = ['---', 'license: apache-2.0', 'base_model: org/base', 'pipeline_tag: text-generation', 'library_name: transformers', 'tags: [chat]', '---', '# A model'].join('\n');

describe('kit init fills the ModelPack fields from the files', () => {
  it('reads paramSize and precision from the safetensors shards, architecture from config.json, license and more from the card', async () => {
    const root = await tempDir();
    await makeTree(root, {
      'README.md': CARD,
      'config.json': JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama', torch_dtype: 'bfloat16' }),
      'model-00001-of-00002.safetensors': safetensorsFile({ 'a.weight': { dtype: 'BF16', shape: [1000, 1000] } }, { format: 'pt' }),
      'model-00002-of-00002.safetensors': safetensorsFile({ 'b.weight': { dtype: 'BF16', shape: [1000, 200] }, 'norm.weight': { dtype: 'F32', shape: [1000] } }),
      'adapter_model.safetensors': safetensorsFile({ 'lora.weight': { dtype: 'F32', shape: [5_000] } }),
    });
    const k = await generateKitfile(root, {});
    assert.equal(k.model?.path, 'model-00001-of-00002.safetensors');
    assert.equal(k.model?.format, 'safetensors');
    assert.equal(k.model?.framework, 'pytorch');
    // 1,000,000 + 200,000 + 1,000 parameters in the model's own shards; the adapter is not counted.
    assert.deepEqual(k.model?.parameters, {
      architecture: 'LlamaForCausalLM',
      paramSize: '1.2M',
      precision: 'bf16',
      modelType: 'llama',
      baseModel: 'org/base',
      pipelineTag: 'text-generation',
      libraryName: 'transformers',
      tags: ['chat'],
    });
    assert.equal(k.package?.license, 'Apache-2.0');
    // What it writes loads back, and the ModelPack config carries the fields.
    const again = parseKitfile(serializeKitfile(k), 'Kitfile');
    const cfg = buildModelPackConfig(again, [], new Date(0));
    assert.deepEqual(cfg.config, { format: 'safetensors', architecture: 'LlamaForCausalLM', paramSize: '1.2M', precision: 'bf16' });
    assert.deepEqual(cfg.descriptor.licenses, ['Apache-2.0']);
  });

  it('uses config.json dtype and quantization when the weights say less, and never fails on odd files', async () => {
    const root = await tempDir();
    await makeTree(root, {
      'model/model.safetensors': Buffer.alloc(300), // not a real safetensors file
      'model/config.json': JSON.stringify({ architectures: ['MistralForCausalLM'], dtype: 'float16', quantization_config: { quant_method: 'gptq', bits: 4 } }),
      'README.md': '---\nlicense: [broken\n---\n',
    });
    const k = await generateKitfile(root, {});
    assert.deepEqual(k.model?.parameters, { architecture: 'MistralForCausalLM', precision: 'int4', quantization: 'gptq' });
    assert.equal(k.package?.license, undefined);

    const plain = await tempDir();
    await makeTree(plain, { 'model.onnx': 'x', 'config.json': '{not json' });
    assert.equal((await generateKitfile(plain, {})).model?.parameters, undefined);
    assert.equal((await generateKitfile(root, { enrich: false })).model?.parameters, undefined);
  });

  it('takes a diffusers pipeline class as the architecture and the card license for datasets-only projects', async () => {
    const root = await tempDir();
    await makeTree(root, {
      'model_index.json': JSON.stringify({ _class_name: 'StableDiffusionPipeline' }),
      'unet/diffusion_pytorch_model.safetensors': safetensorsFile({ w: { dtype: 'F16', shape: [10, 10] } }),
    });
    const k = await generateKitfile(root, {});
    assert.equal((k.model?.parameters as Record<string, unknown>)['architecture'], 'StableDiffusionPipeline');
    assert.equal((k.model?.parameters as Record<string, unknown>)['precision'], 'fp16');

    const data = await tempDir();
    await makeTree(data, { 'README.md': '---\nlicense: cc-by-4.0\ntask_categories: [text-classification]\n---\n', 'train.csv': 'a,b\n' });
    const d = await generateKitfile(data, {});
    assert.equal(d.package?.license, 'CC-BY-4.0');
    assert.equal(d.model, undefined);
  });
});
