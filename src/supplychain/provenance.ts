import { isAbsolute, relative, resolve, sep } from 'node:path';
import { digestHex, sha256 } from '../oci/digest.js';
import type { PackedArtifact } from '../artifact/pack.js';
import { KIT_VERSION } from '../version.js';
import type { GitSource } from './git.js';
import type { InputFile } from './inputs.js';

/**
 * An SLSA Provenance v1 predicate (https://slsa.dev/provenance/v1) for `kit pack`: what was
 * built (the subject of the statement that carries it), how (buildType, externalParameters: the
 * flags), from what (resolvedDependencies: the Kitfile, the git commit of the project and every
 * input file with its sha256), and by whom (runDetails.builder: kit and its version).
 */

export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
/** What `kit pack` does, as a build type: a URI naming kit's packing of a Kitfile project. */
export const KIT_BUILD_TYPE = 'urn:kit:buildtype:pack:v1';
/** The builder, unless KIT_BUILDER_ID names the platform (e.g. a CI workflow URL). */
export const KIT_BUILDER_ID = 'urn:kit:builder:cli';

export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest?: Record<string, string>;
  mediaType?: string;
  annotations?: Record<string, unknown>;
}

export interface SlsaProvenanceV1 {
  buildDefinition: {
    buildType: string;
    externalParameters: Record<string, unknown>;
    internalParameters?: Record<string, unknown>;
    resolvedDependencies?: ResourceDescriptor[];
  };
  runDetails: {
    builder: { id: string; version?: Record<string, string>; builderDependencies?: ResourceDescriptor[] };
    metadata?: { invocationId?: string; startedOn?: string; finishedOn?: string };
    byproducts?: ResourceDescriptor[];
  };
}

export function buildProvenance(p: PackedArtifact, inputs: InputFile[], git: GitSource | undefined, env: NodeJS.ProcessEnv = process.env): SlsaProvenanceV1 {
  const deps: ResourceDescriptor[] = [];
  if (git) {
    const source: ResourceDescriptor = { digest: { gitCommit: git.commit } };
    if (git.remote) source.uri = `git+${git.remote}${git.ref ? `@${git.ref}` : ''}`;
    else source.name = 'git';
    if (git.dirty) source.annotations = { dirty: true };
    deps.push(source);
  }
  deps.push({ name: kitfileName(p), digest: { sha256: digestHex(sha256(p.kitfileText)) }, mediaType: 'application/yaml' });
  // Built on another artifact (model.path naming it): that manifest, whose model layers this one lists.
  if (p.parent) deps.push({ name: p.parent.pinned, digest: { sha256: digestHex(p.parent.digest) }, mediaType: 'application/vnd.oci.image.manifest.v1+json', annotations: { reference: p.parent.reference } });
  for (const f of inputs) deps.push({ name: f.path, digest: { sha256: digestHex(f.sha256) }, annotations: { size: f.size, section: f.section } });

  const internal: Record<string, unknown> = {};
  if (env['SOURCE_DATE_EPOCH']) internal['SOURCE_DATE_EPOCH'] = env['SOURCE_DATE_EPOCH'];
  const at = p.created.toISOString();
  return {
    buildDefinition: {
      buildType: KIT_BUILD_TYPE,
      externalParameters: {
        kitfile: kitfileName(p),
        tags: p.tags,
        format: p.format,
        layerFormat: p.layerFormat,
        compression: p.compression,
      },
      ...(Object.keys(internal).length > 0 ? { internalParameters: internal } : {}),
      resolvedDependencies: deps,
    },
    runDetails: {
      builder: { id: env['KIT_BUILDER_ID'] || KIT_BUILDER_ID, version: { kit: KIT_VERSION, node: process.version } },
      metadata: { startedOn: at, finishedOn: at },
    },
  };
}

/** The Kitfile's path relative to the context when inside it (no local absolute paths leak out). */
function kitfileName(p: PackedArtifact): string {
  if (p.kitfileFile === '<stdin>') return p.kitfileFile;
  const rel = relative(resolve(p.contextDir), resolve(p.kitfileFile));
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return p.kitfileFile.split(sep).pop() ?? 'Kitfile';
  return rel.split(sep).join('/');
}
