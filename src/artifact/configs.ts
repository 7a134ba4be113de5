import type { Digest } from '../oci/digest.js';
import type { Kitfile } from '../kitfile/schema.js';

/** ModelPack model config (CNCF model-spec specs-go/v1/config.go). No other fields allowed. */
export interface ModelPackConfig {
  descriptor: {
    createdAt?: string;
    authors?: string[];
    vendor?: string;
    family?: string;
    name?: string;
    version?: string;
    title?: string;
    description?: string;
    docURL?: string;
    sourceURL?: string;
    datasetsURL?: string[];
    revision?: string;
    licenses?: string[];
  };
  config: {
    architecture?: string;
    format?: string;
    paramSize?: string;
    precision?: string;
    quantization?: string;
    capabilities?: Record<string, unknown>;
  };
  modelfs: { type: 'layers'; diffIds: Digest[] };
}

/** RFC 3339 without fractional seconds, as the model-spec examples write it. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function nonEmpty(s: string | undefined): string | undefined {
  return s !== undefined && s.trim() !== '' ? s : undefined;
}

/** Model parameters that name ModelPack config fields are carried over (e.g. `paramSize: 7B`). */
function parameterString(params: unknown, key: string): string | undefined {
  if (params && typeof params === 'object' && !Array.isArray(params)) {
    const v = (params as Record<string, unknown>)[key];
    if (typeof v === 'string' || typeof v === 'number') return nonEmpty(String(v));
  }
  return undefined;
}

/**
 * Descriptor fields an importer knows and the Kitfile does not carry (`kit import`: the Hub
 * repository and commit). `sourceURL` and `revision` may also come from model parameters of the
 * same names; these win.
 */
export interface DescriptorExtras {
  sourceURL?: string;
  revision?: string;
  docURL?: string;
  family?: string;
}

export function buildModelPackConfig(k: Kitfile, diffIds: Digest[], created: Date, extras: DescriptorExtras = {}): ModelPackConfig {
  const m = k.model;
  const p = k.package;
  const descriptor: ModelPackConfig['descriptor'] = { createdAt: rfc3339(created) };
  if (p?.authors && p.authors.length > 0) descriptor.authors = [...p.authors];
  const name = nonEmpty(m?.name) ?? nonEmpty(p?.name);
  if (name) descriptor.name = name;
  const version = nonEmpty(m?.version) ?? nonEmpty(p?.version);
  if (version) descriptor.version = version;
  if (p?.name && m?.name && p.name !== m.name) descriptor.title = p.name;
  const description = nonEmpty(m?.description) ?? nonEmpty(p?.description);
  if (description) descriptor.description = description;
  const licenses = [...new Set([m?.license, p?.license].map(nonEmpty).filter((x): x is string => x !== undefined))];
  if (licenses.length > 0) descriptor.licenses = licenses;
  // Provenance (kit import): explicit extras, else model parameters of the same name.
  for (const key of ['family', 'docURL', 'sourceURL', 'revision'] as const) {
    const v = nonEmpty(extras[key]) ?? (key === 'sourceURL' || key === 'revision' ? parameterString(m?.parameters, key) : undefined);
    if (v) descriptor[key] = v;
  }

  const config: ModelPackConfig['config'] = {};
  const format = nonEmpty(m?.format) ?? nonEmpty(m?.framework);
  if (format) config.format = format;
  for (const key of ['architecture', 'paramSize', 'precision', 'quantization'] as const) {
    const v = parameterString(m?.parameters, key);
    if (v) config[key] = v;
  }
  return { descriptor, config, modelfs: { type: 'layers', diffIds } };
}

export interface LayerInfo {
  digest: Digest;
  diffId: Digest;
}

/**
 * KitOps ModelKit config: the Kitfile as JSON, each entry carrying the digest and diffId of
 * its layer (`layerInfo`), which is how KitOps matches layers back to Kitfile entries.
 */
export function buildKitOpsConfig(k: Kitfile, info: Map<string, LayerInfo>): Record<string, unknown> {
  const withInfo = <T extends object>(entry: T, key: string): T & { layerInfo?: LayerInfo } => {
    const li = info.get(key);
    return li ? { ...entry, layerInfo: li } : entry;
  };
  const out: Record<string, unknown> = { manifestVersion: k.manifestVersion };
  if (k.package) out.package = k.package;
  if (k.model) {
    const model: Record<string, unknown> = withInfo({ ...k.model }, 'model:0');
    if (k.model.parts) model.parts = k.model.parts.map((p, i) => withInfo(p, `modelpart:${i}`));
    out.model = model;
  }
  if (k.code) out.code = k.code.map((c, i) => withInfo(c, `code:${i}`));
  if (k.datasets) out.datasets = k.datasets.map((d, i) => withInfo(d, `datasets:${i}`));
  if (k.docs) out.docs = k.docs.map((d, i) => withInfo(d, `docs:${i}`));
  if (k.prompts) out.prompts = k.prompts.map((p, i) => withInfo(p, `prompts:${i}`));
  return out;
}

/** The Kitfile back from a KitOps config: the same object without layerInfo. */
export function kitfileFromKitOpsConfig(config: unknown): unknown {
  return JSON.parse(JSON.stringify(config, (key, value) => (key === 'layerInfo' ? undefined : value)));
}
