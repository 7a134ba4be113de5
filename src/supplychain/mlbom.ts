import { createHash } from 'node:crypto';
import { digestHex } from '../oci/digest.js';
import type { PackedArtifact } from '../artifact/pack.js';
import { isArtifactReference, normalizeKitfilePath } from '../kitfile/load.js';
import { KIT_VERSION } from '../version.js';
import type { GitSource } from './git.js';
import type { InputFile } from './inputs.js';

/**
 * A CycloneDX 1.6 ML-BOM for a packed artifact: the model as a `machine-learning-model`
 * component with a model card from the Kitfile (datasets referenced, framework / format /
 * parameters as properties), each dataset as a `data` component, every packed file as a `file`
 * component with its SHA-256, licenses as SPDX expressions (or names), and the dependency graph
 * model -> datasets and files.
 */

export const CYCLONEDX_SPEC = '1.6';
export const CYCLONEDX_PREDICATE = 'https://cyclonedx.org/bom';

type Json = Record<string, unknown>;

export function buildMlBom(p: PackedArtifact, inputs: InputFile[], git: GitSource | undefined): Json {
  const k = p.kitfile;
  const artifactRef = `artifact:${p.descriptor.digest}`;
  const fileRef = (path: string) => `file:${path}`;
  const licenseOf = (f: InputFile): string | undefined => {
    switch (f.section) {
      case 'model':
        return k.model?.license;
      case 'modelpart':
        return k.model?.parts?.[f.entryIndex]?.license ?? k.model?.license;
      case 'datasets':
        return k.datasets?.[f.entryIndex]?.license;
      case 'code':
        return k.code?.[f.entryIndex]?.license;
      default:
        return undefined;
    }
  };
  const files: Json[] = inputs.map((f) => ({
    type: 'file',
    'bom-ref': fileRef(f.path),
    name: f.path,
    hashes: [{ alg: 'SHA-256', content: digestHex(f.sha256) }],
    ...(licenses(licenseOf(f)) ? { licenses: licenses(licenseOf(f)) } : {}),
    properties: [
      { name: 'kit:section', value: f.section },
      { name: 'kit:size', value: String(f.size) },
      { name: 'kit:layer', value: f.layer },
    ],
  }));
  const filesUnder = (path: string | undefined) => (path === undefined ? [] : inputs.filter((f) => f.path === path || path === '.' || f.path.startsWith(`${path}/`)).map((f) => fileRef(f.path)));

  const datasets: Json[] = (k.datasets ?? []).map((d, i) => {
    const name = d.name ?? d.path;
    const c: Json = {
      type: 'data',
      'bom-ref': `dataset:${i}`,
      name,
      data: [{ type: 'dataset', name, ...(d.description ? { description: d.description } : {}), contents: { properties: [{ name: 'kit:path', value: normalizeKitfilePath(d.path) }] } }],
    };
    if (d.description) c['description'] = d.description;
    const lic = licenses(d.license);
    if (lic) c['licenses'] = lic;
    if (d.parameters !== undefined) c['properties'] = [{ name: 'kit:parameters', value: JSON.stringify(d.parameters) }];
    return c;
  });

  const m = k.model;
  const modelName = m?.name ?? k.package?.name ?? 'model';
  const modelProps: Json[] = [];
  if (m?.framework) modelProps.push({ name: 'kit:model:framework', value: m.framework });
  if (m?.format) modelProps.push({ name: 'kit:model:format', value: m.format });
  if (m?.path) modelProps.push({ name: isArtifactReference(m.path) ? 'kit:model:base' : 'kit:model:path', value: m.path });
  for (const part of m?.parts ?? []) modelProps.push({ name: 'kit:model:part', value: `${part.name ? `${part.name}=` : ''}${part.path}${part.type ? ` (${part.type})` : ''}` });
  const cardProps: Json[] = [];
  if (m?.parameters !== undefined) cardProps.push({ name: 'kit:parameters', value: JSON.stringify(m.parameters) });
  const model: Json = {
    type: 'machine-learning-model',
    'bom-ref': 'model',
    name: modelName,
    ...(m?.version ?? k.package?.version ? { version: m?.version ?? k.package?.version } : {}),
    ...(m?.description ?? k.package?.description ? { description: m?.description ?? k.package?.description } : {}),
    ...(licenses(m?.license ?? k.package?.license) ? { licenses: licenses(m?.license ?? k.package?.license) } : {}),
    ...(k.package?.authors?.length ? { authors: k.package.authors.map((name) => ({ name })) } : {}),
    modelCard: {
      modelParameters: {
        ...(datasets.length > 0 ? { datasets: datasets.map((d) => ({ ref: d['bom-ref'] })) } : {}),
      },
      ...(cardProps.length > 0 ? { properties: cardProps } : {}),
    },
    ...(modelProps.length > 0 ? { properties: modelProps } : {}),
  };
  if (git?.remote) model['externalReferences'] = [{ type: 'vcs', url: git.remote, comment: `commit ${git.commit}${git.dirty ? ' (with uncommitted changes)' : ''}` }];

  const modelPaths = [...(m?.path !== undefined && !isArtifactReference(m.path) ? [normalizeKitfilePath(m.path)] : []), ...(m?.parts ?? []).map((part) => normalizeKitfilePath(part.path))];
  const modelFiles = unique(modelPaths.flatMap((path) => filesUnder(path)));
  // The artifact (the BOM's subject) is made of the model, the datasets and the other files.
  const dependencies: Json[] = [
    { ref: artifactRef, dependsOn: unique(['model', ...datasets.map((d) => d['bom-ref'] as string), ...inputs.map((f) => fileRef(f.path)).filter((r) => !modelFiles.includes(r))]) },
    { ref: 'model', dependsOn: unique([...modelFiles, ...datasets.map((d) => d['bom-ref'] as string)]) },
    ...datasets.map((d, i) => ({ ref: d['bom-ref'], dependsOn: unique(filesUnder(normalizeKitfilePath(k.datasets![i]!.path))) })),
    ...files.map((f) => ({ ref: f['bom-ref'] })),
  ];

  return {
    bomFormat: 'CycloneDX',
    specVersion: CYCLONEDX_SPEC,
    serialNumber: serialFor(p),
    version: 1,
    metadata: {
      timestamp: p.created.toISOString(),
      tools: { components: [{ type: 'application', name: 'kit', version: KIT_VERSION }] },
      ...(k.package?.authors?.length ? { authors: k.package.authors.map((name) => ({ name })) } : {}),
      component: {
        type: 'machine-learning-model',
        'bom-ref': artifactRef,
        name: k.package?.name ?? modelName,
        ...(k.package?.version ? { version: k.package.version } : {}),
        ...(k.package?.description ? { description: k.package.description } : {}),
        ...(licenses(k.package?.license) ? { licenses: licenses(k.package?.license) } : {}),
        hashes: [{ alg: 'SHA-256', content: digestHex(p.descriptor.digest) }],
        properties: [
          { name: 'kit:artifact:digest', value: p.descriptor.digest },
          { name: 'kit:artifact:mediaType', value: p.descriptor.mediaType },
          { name: 'kit:artifact:format', value: p.format },
          ...p.tags.map((t) => ({ name: 'kit:artifact:tag', value: t })),
        ],
      },
    },
    components: [model, ...datasets, ...files],
    dependencies,
  };
}

/** `Apache-2.0`, `MIT OR Apache-2.0` as an SPDX expression; free text as a license name. */
function licenses(license: string | undefined): Json[] | undefined {
  if (!license || license.trim() === '') return undefined;
  const text = license.trim();
  if (/^\(?[A-Za-z0-9.+-]+(\s+(AND|OR|WITH)\s+\(?[A-Za-z0-9.+-]+\)?)*\)?$/.test(text)) return [{ expression: text }];
  return [{ license: { name: text } }];
}

/** An RFC 4122 name-based (v5-style) UUID from the artifact digest and pack time: one per build. */
function serialFor(p: PackedArtifact): string {
  const h = createHash('sha1').update(`kit-ml-bom:${p.descriptor.digest}:${p.created.toISOString()}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `urn:uuid:${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}
