import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseFilters, selectsKitfile, selectsLayer } from '../../../src/artifact/filter.js';
import { renderValue, selectPath } from '../../../src/artifact/info.js';
import { KitError } from '../../../src/errors.js';

describe('unpack filters', () => {
  it('selects by type, name and path; model includes parts; no filter selects all', () => {
    assert.equal(selectsLayer([], 'code', undefined, 'src', 'src'), true);
    const f = parseFilters(['model', 'datasets:training', 'docs:./README.md']);
    assert.equal(selectsLayer(f, 'modelpart', undefined, 'm/tok.json', 'm/tok.json'), true);
    assert.equal(selectsLayer(f, 'datasets', 'training', 'data/t.csv', 'data/t.csv'), true);
    assert.equal(selectsLayer(f, 'datasets', 'eval', 'data/e.csv', 'data/e.csv'), false);
    assert.equal(selectsLayer(f, 'docs', undefined, 'README.md', 'README.md'), true);
    assert.equal(selectsLayer(f, 'docs', undefined, 'docs', 'docs'), false);
    assert.equal(selectsLayer(f, 'code', undefined, 'src', 'src'), false);
    assert.equal(selectsKitfile(f), false);
    assert.equal(selectsKitfile(parseFilters(['config'])), true);
    assert.deepEqual([...parseFilters(['code,docs'])[0]!.types].sort(), ['code', 'docs']);
  });

  it('refuses unknown filter types', () => {
    assert.throws(() => parseFilters(['weights']), (e: unknown) => e instanceof KitError && e.exitCode === 2);
  });
});

describe('info --filter paths', () => {
  const k = { model: { name: 'm', parts: [{ path: 'a' }] }, datasets: [{ name: 'd', path: 'x.csv' }] };
  it('walks fields and indexes', () => {
    assert.equal(selectPath(k, '.model.name'), 'm');
    assert.equal(selectPath(k, '.model.parts[0].path'), 'a');
    assert.equal(selectPath(k, '.datasets[3]'), undefined);
    assert.equal(selectPath(k, '.'), k);
    assert.equal(renderValue(selectPath(k, '.datasets[0]')), 'name: d\npath: x.csv');
  });
  it('refuses malformed paths', () => {
    assert.throws(() => selectPath(k, 'model'), KitError);
    assert.throws(() => selectPath(k, '.model..name'), KitError);
  });
});
