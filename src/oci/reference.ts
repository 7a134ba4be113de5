import { KitError, ExitCode } from '../errors.js';
import { parseDigest, type Digest } from './digest.js';

/**
 * An artifact reference: `[registry[:port]/]repository[:tag][@sha256:...]`, following the
 * grammar of distribution/reference. A name without a registry host is on Docker Hub
 * (`docker.io`, with `library/` for single-component names), as with docker and oras.
 */
export interface Reference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: Digest;
}

export const DOCKER_HUB = 'docker.io';
export const DEFAULT_TAG = 'latest';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const HOST_LABEL = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const MAX_NAME = 255;

function invalid(input: string, why: string): KitError {
  return new KitError('REFERENCE_INVALID', `invalid reference ${JSON.stringify(input)}: ${why}`, {
    hint: 'use [registry[:port]/]repository[:tag][@sha256:<hex>], lowercase repository, e.g. registry.example.com/team/model:1.0',
    exitCode: ExitCode.usage,
  });
}

function isRegistryHost(s: string): boolean {
  // The first component is a registry when it looks like a host: has a dot or a port, is
  // localhost, or is a bracketed IPv6 address. Otherwise it is a Docker Hub namespace.
  return s === 'localhost' || s.includes('.') || s.includes(':') || s.startsWith('[');
}

function validHost(host: string): boolean {
  let h = host;
  let port: string | undefined;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return false;
    const ip6 = h.slice(1, end);
    if (!/^[0-9a-fA-F:.]+$/.test(ip6) || !ip6.includes(':')) return false;
    const rest = h.slice(end + 1);
    if (rest === '') return true;
    if (!rest.startsWith(':')) return false;
    port = rest.slice(1);
  } else {
    const i = h.lastIndexOf(':');
    if (i >= 0) {
      port = h.slice(i + 1);
      h = h.slice(0, i);
    }
    if (h === '' || !h.split('.').every((l) => HOST_LABEL.test(l))) return false;
  }
  if (port !== undefined && (!/^\d{1,5}$/.test(port) || Number(port) > 65535)) return false;
  return true;
}

/** Parse and normalise. Throws KitError REFERENCE_INVALID with the reason. */
export function parseReference(input: string): Reference {
  const s = input.trim();
  if (s === '') throw invalid(input, 'it is empty');
  if (/[\s]/.test(s)) throw invalid(input, 'it contains white space');
  if (s.includes('://')) throw invalid(input, 'a reference has no scheme (drop "https://")');

  let rest = s;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    try {
      digest = parseDigest(rest.slice(at + 1), 'digest');
    } catch (e) {
      throw invalid(input, (e as Error).message);
    }
    rest = rest.slice(0, at);
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) throw invalid(input, `tag ${JSON.stringify(tag)} must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`);
  }

  let registry = DOCKER_HUB;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0 && isRegistryHost(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    repository = rest.slice(slash + 1);
    if (!validHost(registry)) throw invalid(input, `registry host ${JSON.stringify(registry)} is not a valid host[:port]`);
  }
  if (repository === '') throw invalid(input, 'the repository name is missing');
  if (repository.length > MAX_NAME) throw invalid(input, `the repository name is longer than ${MAX_NAME} characters`);
  for (const c of repository.split('/')) {
    if (!COMPONENT.test(c)) {
      throw invalid(
        input,
        c === '' ? 'the repository has an empty path component' : `repository component ${JSON.stringify(c)} must be lowercase letters, digits and separators (. _ __ -)`,
      );
    }
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;

  const ref: Reference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** Parse; a reference with neither tag nor digest gets `:latest`. */
export function parseReferenceWithDefaultTag(input: string): Reference {
  const ref = parseReference(input);
  if (ref.tag === undefined && ref.digest === undefined) ref.tag = DEFAULT_TAG;
  return ref;
}

/** `registry/repository` */
export function repositoryName(ref: Pick<Reference, 'registry' | 'repository'>): string {
  return `${ref.registry}/${ref.repository}`;
}

/** Full normalised form: `registry/repository[:tag][@digest]`. */
export function formatReference(ref: Reference): string {
  let s = repositoryName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** The short form a user typed for Docker Hub names (`library/x` -> `x`), full otherwise. */
export function familiarRepository(ref: Pick<Reference, 'registry' | 'repository'>): string {
  if (ref.registry !== DOCKER_HUB) return repositoryName(ref);
  return ref.repository.startsWith('library/') ? ref.repository.slice('library/'.length) : ref.repository;
}

/** A reference that names one artifact for good: `registry/repository@sha256:...`. */
export function isPinnedReference(value: string): boolean {
  try {
    const r = parseReference(value);
    return r.digest !== undefined && value.includes('/');
  } catch {
    return false;
  }
}
