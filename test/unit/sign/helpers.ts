import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { LocalStore } from '../../../src/store/local-store.js';
import { makeArtifact } from '../store/fixtures.js';
import { tempDir } from '../../helpers/tmp.js';
import type { Descriptor } from '../../../src/oci/descriptor.js';

/** A fresh store holding one tagged artifact, and a P-256 key pair. Shared by the sign tests (not a *.test file). */
export async function signingFixture(ref = 'registry.example.com/team/model:1.0', layers = ['weights', 'more weights']): Promise<{ store: LocalStore; subject: Descriptor; ref: string; privateKey: KeyObject; publicKey: KeyObject }> {
  const store = await LocalStore.open(join(await tempDir(), 'store'));
  const { manifest } = await makeArtifact(store, layers);
  await store.tag(manifest, ref);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { store, subject: manifest, ref, privateKey, publicKey };
}
