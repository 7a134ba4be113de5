import { stringify } from 'yaml';
import { KitError, ExitCode } from '../errors.js';

/**
 * `kit info --filter .model.name`: a small jq-like path (`.a.b`, `.list[0].path`) into the
 * Kitfile. Scalars print bare; objects and lists print as YAML.
 */
export function selectPath(value: unknown, path: string): unknown {
  if (path === '.' || path === '') return value;
  if (!path.startsWith('.')) throw badFilter(path, 'it must start with "."');
  const steps: Array<string | number> = [];
  const re = /\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < path.length) {
    re.lastIndex = pos;
    m = re.exec(path);
    if (!m) throw badFilter(path, `unexpected text at ${JSON.stringify(path.slice(pos))}`);
    steps.push(m[1] !== undefined ? m[1] : Number(m[2]));
    pos = re.lastIndex;
  }
  let cur: unknown = value;
  for (const s of steps) {
    if (cur === null || cur === undefined) return undefined;
    cur = typeof s === 'number' ? (Array.isArray(cur) ? cur[s] : undefined) : typeof cur === 'object' ? (cur as Record<string, unknown>)[s] : undefined;
  }
  return cur;
}

function badFilter(path: string, why: string): KitError {
  return new KitError('FILTER_INVALID', `invalid filter ${JSON.stringify(path)}: ${why}`, {
    hint: 'use a path such as .model.name or .datasets[0].path',
    exitCode: ExitCode.usage,
  });
}

export function renderValue(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return stringify(v).trimEnd();
}
