import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { sha256 } from '../../src/oci/digest.js';
import { MediaType, type Descriptor } from '../../src/oci/descriptor.js';
import { LocalStore } from '../../src/store/local-store.js';

/**
 * Builds artifacts by hand, bypassing `kit pack`: for artifacts "made by another tool" and for
 * hostile ones that kit itself would never write.
 */
export interface CraftLayer {
  mediaType: string;
  content: Buffer;
  annotations?: Record<string, string>;
}

export async function putBlob(store: LocalStore, content: Buffer, mediaType: string): Promise<Descriptor> {
  const desc: Descriptor = { mediaType, digest: sha256(content), size: content.length };
  await store.push(desc, Readable.from([content]));
  return desc;
}

export async function craftArtifact(
  root: string,
  ref: string,
  layers: CraftLayer[],
  opts: { config?: unknown; configMediaType?: string; annotations?: Record<string, string>; artifactType?: string } = {},
): Promise<Descriptor> {
  const store = await LocalStore.open(root);
  const layerDescs: Descriptor[] = [];
  for (const l of layers) {
    const d = await putBlob(store, l.content, l.mediaType);
    layerDescs.push(l.annotations ? { ...d, annotations: l.annotations } : d);
  }
  const config = Buffer.from(JSON.stringify(opts.config ?? { descriptor: { name: 'crafted' }, config: {}, modelfs: { type: 'layers', diffIds: layerDescs.map((l) => l.digest) } }));
  const configDesc = await putBlob(store, config, opts.configMediaType ?? 'application/vnd.cncf.model.config.v1+json');
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ImageManifest,
    artifactType: opts.artifactType ?? 'application/vnd.cncf.model.manifest.v1+json',
    config: configDesc,
    layers: layerDescs,
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  const m = await putBlob(store, Buffer.from(JSON.stringify(manifest)), MediaType.ImageManifest);
  await store.tag(m, ref);
  return m;
}

export type TarItem = Partial<tarStream.Header> & { name: string; body?: string | Buffer };

/** A tar archive from raw headers, hostile ones included. */
export async function makeTar(items: TarItem[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const { body, ...header } of items) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (body === undefined) pack.entry(header, cb);
      else pack.entry(header, body, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}
