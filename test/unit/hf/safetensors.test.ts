import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { formatParamSize, parseSafetensorsHeader, precisionFromDtypes, readSafetensorsHeader, summarize } from '../../../src/hf/safetensors.js';
import { safetensorsFile } from '../../helpers/fake-hub.js';
import { tempDir } from '../../helpers/tmp.js';

describe('formatParamSize (model-spec <count><K|M|B|T>, at most one decimal)', () => {
  const cases: Array<[number, string]> = [
    [7_241_732_096, '7.2B'],
    [124_439_808, '124M'],
    [494_032_768, '494M'],
    [1_000_000_000, '1B'],
    [999_600_000, '1B'],
    [13_015_864_320, '13B'],
    [70_553_706_496, '71B'],
    [1_500_000_000, '1.5B'],
    [33_000, '33K'],
    [33_410, '33K'],
    [9_960, '10K'],
    [1_234, '1.2K'],
    [512, '0.5K'],
    [3, '0.1K'],
    [1_800_000_000_000, '1.8T'],
    [2_000_000_000_000_000, '2Q'],
  ];
  for (const [n, s] of cases) it(`${n} -> ${s}`, () => assert.equal(formatParamSize(n), s));
  it('matches the model-spec grammar', () => {
    for (const [n] of cases) assert.match(formatParamSize(n), /^\d+(\.\d)?[KMBTQ]$/);
  });
});

describe('safetensors headers', () => {
  it('reads tensors, shapes, dtypes and metadata; counts parameters', async () => {
    const file = safetensorsFile(
      { 'embed.weight': { dtype: 'BF16', shape: [1000, 64] }, 'norm.weight': { dtype: 'F32', shape: [64] }, 'head.weight': { dtype: 'BF16', shape: [64, 1000] } },
      { format: 'pt' },
    );
    const h = parseSafetensorsHeader(file);
    assert.equal(h.tensors.size, 3);
    assert.deepEqual(h.tensors.get('embed.weight'), { dtype: 'BF16', shape: [1000, 64] });
    assert.deepEqual(h.metadata, { format: 'pt' });
    const path = join(await tempDir(), 'model.safetensors');
    await writeFile(path, file);
    const s = summarize([await readSafetensorsHeader(path)]);
    assert.equal(s.parameters, 128_064);
    assert.equal(precisionFromDtypes(s.byDtype), 'bf16'); // 64 fp32 norm weights do not make it mixed
    assert.equal(formatParamSize(s.parameters), '128K');
  });

  it('sums shards and calls a real mix of dtypes mixed', () => {
    const a = parseSafetensorsHeader(safetensorsFile({ a: { dtype: 'F16', shape: [10, 10] } }));
    const b = parseSafetensorsHeader(safetensorsFile({ b: { dtype: 'F32', shape: [10, 10] } }));
    const s = summarize([a, b]);
    assert.equal(s.parameters, 200);
    assert.equal(precisionFromDtypes(s.byDtype), 'mixed');
    assert.equal(precisionFromDtypes(summarize([parseSafetensorsHeader(safetensorsFile({ q: { dtype: 'I8', shape: [4] } }))]).byDtype), 'int8');
    assert.equal(precisionFromDtypes(new Map()), undefined);
  });

  it('refuses what is not a safetensors header', async () => {
    assert.throws(() => parseSafetensorsHeader(Buffer.alloc(4)));
    assert.throws(() => parseSafetensorsHeader(Buffer.alloc(300))); // zero length
    const huge = Buffer.alloc(16);
    huge.writeBigUInt64LE(1n << 40n);
    assert.throws(() => parseSafetensorsHeader(huge), /implausible/);
    const notJson = Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('nope')]);
    assert.throws(() => parseSafetensorsHeader(notJson), /not JSON/);
    const badShape = safetensorsFile({});
    const json = Buffer.from(JSON.stringify({ t: { dtype: 'F32', shape: [-1] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    assert.throws(() => parseSafetensorsHeader(Buffer.concat([len, json])), /dtype and shape/);
    assert.equal(parseSafetensorsHeader(badShape).tensors.size, 0);
    const path = join(await tempDir(), 'cut.safetensors');
    await writeFile(path, safetensorsFile({ t: { dtype: 'F32', shape: [2] } }).subarray(0, 12));
    await assert.rejects(readSafetensorsHeader(path), /implausible|cut short/);
  });
});
