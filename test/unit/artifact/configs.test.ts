import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildKitOpsConfig, buildModelPackConfig, kitfileFromKitOpsConfig, rfc3339 } from '../../../src/artifact/configs.js';
import { modelPackLayerType, parseLayerType } from '../../../src/artifact/media-types.js';
import { buildTime } from '../../../src/artifact/pack.js';
import { KitError } from '../../../src/errors.js';

const D = `sha256:${'b'.repeat(64)}` as const;

describe('ModelPack config from a Kitfile', () => {
  it('maps package and model fields, model first', () => {
    const c = buildModelPackConfig(
      {
        manifestVersion: '1.0.0',
        package: { name: 'pkg', version: '2', description: 'pd', license: 'MIT', authors: ['A', 'B'] },
        model: { name: 'mod', path: 'm.bin', format: 'gguf', license: 'Apache-2.0', parameters: { paramSize: '7B', precision: 'q4', other: 1 } },
      },
      [D],
      new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)),
    );
    assert.deepEqual(c, {
      descriptor: { createdAt: '2024-01-02T03:04:05Z', authors: ['A', 'B'], name: 'mod', version: '2', title: 'pkg', description: 'pd', licenses: ['Apache-2.0', 'MIT'] },
      config: { format: 'gguf', paramSize: '7B', precision: 'q4' },
      modelfs: { type: 'layers', diffIds: [D] },
    });
  });

  it('omits what the Kitfile does not say', () => {
    const c = buildModelPackConfig({ manifestVersion: '1.0.0', docs: [{ path: 'README.md' }] }, [D], new Date(0));
    assert.deepEqual(c.descriptor, { createdAt: '1970-01-01T00:00:00Z' });
    assert.deepEqual(c.config, {});
  });
});

describe('KitOps config', () => {
  it('carries layerInfo per entry and gives the Kitfile back', () => {
    const k = { manifestVersion: '1.0.0', model: { path: 'm.bin', parts: [{ path: 'p.json' }] }, code: [{ path: 'src' }] };
    const info = new Map([
      ['model:0', { digest: D, diffId: D }],
      ['modelpart:0', { digest: D, diffId: D }],
      ['code:0', { digest: D, diffId: D }],
    ]);
    const c = buildKitOpsConfig(k, info) as { model: { layerInfo: unknown; parts: Array<{ layerInfo: unknown }> } };
    assert.deepEqual(c.model.layerInfo, { digest: D, diffId: D });
    assert.deepEqual(c.model.parts[0]!.layerInfo, { digest: D, diffId: D });
    assert.deepEqual(kitfileFromKitOpsConfig(c), k);
  });
});

describe('media types', () => {
  it('builds and recognises both formats and the legacy names', () => {
    assert.equal(modelPackLayerType('weight.config', 'tar+zstd'), 'application/vnd.cncf.model.weight.config.v1.tar+zstd');
    assert.deepEqual(parseLayerType('application/vnd.cnai.model.weight.v1.raw'), { format: 'modelpack', kind: 'weight', encoding: 'raw' });
    assert.deepEqual(parseLayerType('application/vnd.kitops.modelkit.dataset.v1.tar+gzip'), { format: 'kitops', kind: 'dataset', encoding: 'tar+gzip' });
    assert.equal(parseLayerType('application/vnd.oci.image.layer.v1.tar'), undefined);
    assert.equal(parseLayerType('application/vnd.kitops.modelkit.model.v1.raw'), undefined);
  });
});

describe('build time', () => {
  it('honours SOURCE_DATE_EPOCH and refuses garbage', () => {
    assert.equal(rfc3339(buildTime({ SOURCE_DATE_EPOCH: '86400' })), '1970-01-02T00:00:00Z');
    assert.throws(() => buildTime({ SOURCE_DATE_EPOCH: 'yesterday' }), KitError);
  });
});
