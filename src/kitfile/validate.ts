/**
 * Validation of a Kitfile value (already turned from YAML into plain data), position-free: each
 * issue names the field by its path in the data. load.ts maps those paths back to line:column.
 *
 * Everything is collected in one pass so a user fixes all problems at once, not one per run. The
 * shape (zod) and the path rules are checked independently on purpose: zod stops refining a
 * document that has a type error, but a wrong path three entries down is still worth reporting.
 */
import type { ZodIssue } from 'zod';
import { KitfileSchema, type Kitfile } from './schema.js';
import { isArtifactReference, kitfilePathProblem, normalizeKitfilePath } from './paths.js';

export type FieldPath = Array<string | number>;

export interface KitfileIssue {
  path: FieldPath;
  message: string;
  /** Point at the key rather than the value (unknown keys). */
  at?: 'key';
}

/** `['datasets', 1, 'path']` -> `datasets[1].path` */
export function formatFieldPath(path: FieldPath): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else s += s === '' ? seg : `.${seg}`;
  }
  return s;
}

/**
 * Check a Kitfile value. `offsetOf` (the source offset of a field, when the value came from text)
 * lets duplicate paths be reported at their later occurrence in the file rather than in section
 * order.
 */
export function validateKitfileValue(
  value: unknown,
  offsetOf?: (path: FieldPath) => number,
): { kitfile?: Kitfile; issues: KitfileIssue[] } {
  if (value === null || value === undefined) {
    return { issues: [{ path: [], message: 'the Kitfile is empty; it needs at least manifestVersion and something to pack' }] };
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    return { issues: [{ path: [], message: 'a Kitfile must be a YAML mapping (key: value pairs) at the top level' }] };
  }
  const parsed = KitfileSchema.safeParse(value);
  const issues: KitfileIssue[] = parsed.success ? [] : parsed.error.issues.flatMap(fromZodIssue);
  const raw = value as Record<string, unknown>;
  issues.push(...contentIssues(raw), ...pathIssues(raw, offsetOf));
  return parsed.success && issues.length === 0 ? { kitfile: parsed.data, issues } : { issues };
}

// ---- shape (zod) -------------------------------------------------------------------------------

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  array: 'a list',
  object: 'a mapping (key: value pairs)',
};

function fromZodIssue(issue: ZodIssue): KitfileIssue[] {
  const path = issue.path as FieldPath;
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({
        path: [...path, key],
        message: unknownKeyMessage(key, issue.path.length === 0),
        at: 'key' as const,
      }));
    case 'invalid_type':
      if (issue.received === 'undefined') return [{ path, message: 'is required' }];
      return [{ path, message: `must be ${TYPE_NAMES[issue.expected] ?? issue.expected}, not ${describeReceived(issue.received)}` }];
    default:
      return [{ path, message: issue.message }];
  }
}

function describeReceived(received: string): string {
  if (received === 'array') return 'a list';
  if (received === 'object') return 'a mapping';
  if (received === 'null') return 'null';
  return `a ${received}`;
}

/** Every field name the Kitfile knows, for "did you mean" suggestions. */
const KNOWN_FIELDS = [
  'manifestVersion', 'package', 'model', 'datasets', 'code', 'docs', 'prompts',
  'name', 'version', 'description', 'license', 'authors', 'path', 'framework', 'format',
  'parameters', 'parts', 'type',
];

function unknownKeyMessage(key: string, topLevel: boolean): string {
  const suggestion = closest(key, KNOWN_FIELDS);
  let msg = `unknown field ${JSON.stringify(key)}`;
  if (suggestion) msg += ` (did you mean ${JSON.stringify(suggestion)}?)`;
  else if (topLevel) msg += '; a Kitfile has manifestVersion, package, model, datasets, code, docs and prompts';
  return msg;
}

/** The known name within edit distance 2 (case-insensitive), if any. */
function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDist = 3;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

// ---- content ---------------------------------------------------------------------------------

const CONTENT_SECTIONS = ['model', 'datasets', 'code', 'docs', 'prompts'] as const;

/** A Kitfile that packs nothing would produce an artifact with no layers. */
function contentIssues(raw: Record<string, unknown>): KitfileIssue[] {
  const hasContent = CONTENT_SECTIONS.some((s) => {
    const v = raw[s];
    return Array.isArray(v) ? v.length > 0 : v !== undefined && v !== null;
  });
  if (hasContent) return [];
  return [{ path: [], message: `nothing to pack: add at least one of ${CONTENT_SECTIONS.join(', ')}` }];
}

// ---- paths -----------------------------------------------------------------------------------

interface PathEntry {
  field: FieldPath;
  value: string;
  /** model.path may name another artifact instead of a path. */
  mayBeReference: boolean;
}

/** Every `path` field in section order, skipping entries whose shape zod already rejected. */
export function collectPathEntries(raw: Record<string, unknown>): PathEntry[] {
  const entries: PathEntry[] = [];
  const add = (field: FieldPath, v: unknown, mayBeReference = false): void => {
    if (typeof v === 'string') entries.push({ field, value: v, mayBeReference });
  };
  const model = raw['model'];
  if (isRecord(model)) {
    add(['model', 'path'], model['path'], true);
    forEachRecord(model['parts'], (part, i) => add(['model', 'parts', i, 'path'], part['path']));
  }
  for (const section of ['datasets', 'code', 'docs', 'prompts'] as const) {
    forEachRecord(raw[section], (entry, i) => add([section, i, 'path'], entry['path']));
  }
  return entries;
}

function pathIssues(raw: Record<string, unknown>, offsetOf?: (path: FieldPath) => number): KitfileIssue[] {
  const issues: KitfileIssue[] = [];
  const firstUse = new Map<string, FieldPath>();
  const entries = collectPathEntries(raw);
  if (offsetOf) {
    const offsets = new Map(entries.map((e) => [e, offsetOf(e.field)]));
    entries.sort((a, b) => offsets.get(a)! - offsets.get(b)!); // stable: ties keep section order
  }
  for (const entry of entries) {
    const isReference = isArtifactReference(entry.value);
    if (entry.mayBeReference && isReference) continue;
    const problem = isReference
      ? `${JSON.stringify(entry.value)} is an artifact reference; only model.path may name another artifact, other paths are local`
      : kitfilePathProblem(entry.value);
    if (problem) {
      issues.push({ path: entry.field, message: problem });
      continue;
    }
    const key = normalizeKitfilePath(entry.value);
    const first = firstUse.get(key);
    if (first) {
      issues.push({ path: entry.field, message: `duplicate path ${JSON.stringify(key)}: already used by ${formatFieldPath(first)}` });
    } else {
      firstUse.set(key, entry.field);
    }
  }
  return issues;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function forEachRecord(list: unknown, fn: (entry: Record<string, unknown>, index: number) => void): void {
  if (!Array.isArray(list)) return;
  list.forEach((entry, i) => {
    if (isRecord(entry)) fn(entry, i);
  });
}
