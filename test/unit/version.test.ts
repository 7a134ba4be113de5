import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KIT_VERSION } from '../../src/version.js';
import { REPO_ROOT } from '../helpers/cli.js';

it('KIT_VERSION matches package.json', async () => {
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(KIT_VERSION, pkg.version);
});
