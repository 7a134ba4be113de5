import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultStoreRoot, kitHome } from '../../../src/store/paths.js';

describe('kitHome', () => {
  const saved = { KIT_HOME: process.env['KIT_HOME'], XDG_DATA_HOME: process.env['XDG_DATA_HOME'] };
  beforeEach(() => {
    delete process.env['KIT_HOME'];
    delete process.env['XDG_DATA_HOME'];
  });
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('prefers KIT_HOME, made absolute', () => {
    process.env['KIT_HOME'] = 'rel/kit';
    process.env['XDG_DATA_HOME'] = '/xdg';
    assert.equal(kitHome(), resolve('rel/kit'));
    assert.equal(defaultStoreRoot(), join(resolve('rel/kit'), 'store'));
  });

  it('falls back to XDG_DATA_HOME/kit, ignoring a relative one', () => {
    process.env['XDG_DATA_HOME'] = '/xdg';
    assert.equal(kitHome(), '/xdg/kit');
    process.env['XDG_DATA_HOME'] = 'relative';
    assert.equal(kitHome(), join(homedir(), '.local', 'share', 'kit'));
  });

  it('defaults to ~/.local/share/kit', () => {
    assert.equal(kitHome(), join(homedir(), '.local', 'share', 'kit'));
    assert.equal(defaultStoreRoot(), join(homedir(), '.local', 'share', 'kit', 'store'));
  });
});
