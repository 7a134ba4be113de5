import { KitError, ExitCode } from '../errors.js';
import { normalizeKitfilePath } from '../kitfile/load.js';
import type { Section } from './media-types.js';

/**
 * Unpack filters, KitOps-compatible: `TYPE[,TYPE...][:ID[,ID...]]` where TYPE is model,
 * datasets, code, docs, prompts or kitfile (config is an alias), and ID a Kitfile entry name
 * or path. Several filters are OR-ed. No filter selects everything.
 */
export type FilterType = 'model' | 'datasets' | 'code' | 'docs' | 'prompts' | 'kitfile';

export interface UnpackFilter {
  types: Set<FilterType>;
  ids: string[];
}

const ALIASES: Record<string, FilterType> = {
  model: 'model',
  models: 'model',
  datasets: 'datasets',
  dataset: 'datasets',
  code: 'code',
  docs: 'docs',
  doc: 'docs',
  prompts: 'prompts',
  prompt: 'prompts',
  kitfile: 'kitfile',
  config: 'kitfile',
};

export function parseFilters(raw: string[]): UnpackFilter[] {
  return raw.map((f) => {
    const colon = f.indexOf(':');
    const typePart = colon < 0 ? f : f.slice(0, colon);
    const idPart = colon < 0 ? '' : f.slice(colon + 1);
    const types = new Set<FilterType>();
    for (const t of typePart.split(',').map((s) => s.trim().toLowerCase())) {
      const ft = ALIASES[t];
      if (!ft) {
        throw new KitError('FILTER_INVALID', `unknown filter type ${JSON.stringify(t)} in --filter ${JSON.stringify(f)}`, {
          hint: 'use model, datasets, code, docs, prompts or kitfile, optionally followed by :NAME or :PATH',
          exitCode: ExitCode.usage,
        });
      }
      types.add(ft);
    }
    const ids = idPart === '' ? [] : idPart.split(',').map((s) => s.trim()).filter((s) => s !== '');
    return { types, ids };
  });
}

function sectionType(section: Section): FilterType {
  return section === 'modelpart' ? 'model' : section;
}

/** Does any filter select a layer of this section, entry name and path? */
export function selectsLayer(filters: UnpackFilter[], section: Section, name: string | undefined, path: string, entryPath: string): boolean {
  if (filters.length === 0) return true;
  const t = sectionType(section);
  return filters.some((f) => {
    if (!f.types.has(t)) return false;
    if (f.ids.length === 0) return true;
    return f.ids.some((id) => id === name || normalizeKitfilePath(id) === entryPath || normalizeKitfilePath(id) === path);
  });
}

export function selectsKitfile(filters: UnpackFilter[]): boolean {
  return filters.length === 0 || filters.some((f) => f.types.has('kitfile'));
}
