/**
 * Token scopes: `type:name:action[,action...]`, e.g. `repository:team/model:pull,push`
 * (distribution's token scope grammar). The name may itself hold colons, so the type ends at
 * the first colon and the actions start after the last one.
 */
interface ParsedScope {
  resource: string; // `type:name`
  actions: Set<string>;
}

function parseScope(scope: string): ParsedScope | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) return undefined;
  const actions = new Set(scope.slice(last + 1).split(',').filter((a) => a !== ''));
  return { resource: scope.slice(0, last), actions };
}

/**
 * De-duplicates and merges scopes: actions on the same resource are united and sorted (a `*`
 * stands for all of them), scopes with no action are dropped, anything unrecognised is kept
 * as is. The result is sorted, so equal sets give equal keys.
 */
export function cleanScopes(scopes: Iterable<string>): string[] {
  const byResource = new Map<string, Set<string>>();
  const opaque = new Set<string>();
  for (const raw of scopes) {
    const scope = raw.trim();
    if (scope === '') continue;
    const parsed = parseScope(scope);
    if (!parsed) {
      opaque.add(scope);
      continue;
    }
    if (parsed.actions.size === 0) continue;
    const set = byResource.get(parsed.resource) ?? new Set<string>();
    for (const a of parsed.actions) set.add(a);
    byResource.set(parsed.resource, set);
  }
  const out = [...opaque];
  for (const [resource, actions] of byResource) {
    const list = actions.has('*') ? ['*'] : [...actions].sort();
    out.push(`${resource}:${list.join(',')}`);
  }
  return out.sort();
}

/** The cache key of a scope set: cleaned and joined. `''` means "no scope" (e.g. GET /v2/). */
export function scopeKey(scopes: Iterable<string>): string {
  return cleanScopes(scopes).join(' ');
}

/** Splits a challenge's space-separated `scope` parameter. */
export function splitScopeParam(param: string | undefined): string[] {
  return param === undefined ? [] : param.split(/\s+/).filter((s) => s !== '');
}

/** Does a token granted for `granted` also serve a request needing `wanted`? */
export function coversScopes(granted: string[], wanted: string[]): boolean {
  const have = new Map<string, Set<string>>();
  const opaque = new Set<string>();
  for (const g of granted) {
    const p = parseScope(g);
    if (p) have.set(p.resource, p.actions);
    else opaque.add(g);
  }
  for (const w of cleanScopes(wanted)) {
    const p = parseScope(w);
    if (!p) {
      if (!opaque.has(w)) return false;
      continue;
    }
    const actions = have.get(p.resource);
    if (!actions) return false;
    if (actions.has('*')) continue;
    for (const a of p.actions) if (!actions.has(a)) return false;
  }
  return true;
}
