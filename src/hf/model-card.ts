/**
 * Model and dataset cards: the YAML front matter of a Hub repository's README.md
 * (`---` on the first line, YAML, `---`). The Hub documents the keys; the ones kit reads are
 * license (with license_name for `other`), base_model, pipeline_tag, tags, library_name and,
 * for datasets, task_categories.
 */
import { parse } from 'yaml';

export interface ModelCard {
  /** As written on the card (`apache-2.0`, `other`, ...). */
  license?: string;
  /** `license_name` of a card whose license is `other`. */
  licenseName?: string;
  baseModel?: string[];
  pipelineTag?: string;
  tags?: string[];
  libraryName?: string;
  taskCategories?: string[];
}

/** Cards bigger than this are not parsed (the front matter of real cards is a few KB). */
const MAX_FRONT_MATTER = 256 * 1024;

/** The YAML text between the opening and closing `---`, or undefined when there is none. */
export function frontMatter(text: string): string | undefined {
  const s = text.startsWith('\ufeff') ? text.slice(1) : text;
  const open = /^---[ \t]*\r?\n/.exec(s);
  if (!open) return undefined;
  const rest = s.slice(open[0].length);
  const close = /^---[ \t]*$/m.exec(rest);
  if (!close) return undefined;
  const yaml = rest.slice(0, close.index);
  return yaml.length > MAX_FRONT_MATTER ? undefined : yaml;
}

function str(v: unknown): string | undefined {
  if (typeof v === 'string' && v.trim() !== '') return v.trim();
  if (typeof v === 'number') return String(v);
  return undefined;
}

function strList(v: unknown): string[] | undefined {
  const items = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  const out = items.map(str).filter((x): x is string => x !== undefined);
  return out.length > 0 ? [...new Set(out)] : undefined;
}

/** Read the card's front matter; a card without one, or with broken YAML, gives `{}`. */
export function parseModelCard(text: string): ModelCard {
  const yaml = frontMatter(text);
  if (yaml === undefined) return {};
  let data: unknown;
  try {
    data = parse(yaml, { maxAliasCount: 100 });
  } catch {
    return {};
  }
  return cardFromData(data);
}

/** The same fields from card data already parsed (the Hub API's `cardData`). */
export function cardFromData(data: unknown): ModelCard {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return {};
  const d = data as Record<string, unknown>;
  const card: ModelCard = {};
  const license = Array.isArray(d['license']) ? str(d['license'][0]) : str(d['license']);
  if (license) card.license = license;
  const licenseName = str(d['license_name']);
  if (licenseName) card.licenseName = licenseName;
  const baseModel = strList(d['base_model']);
  if (baseModel) card.baseModel = baseModel;
  const pipelineTag = str(d['pipeline_tag']);
  if (pipelineTag) card.pipelineTag = pipelineTag;
  const tags = strList(d['tags']);
  if (tags) card.tags = tags;
  const libraryName = str(d['library_name']);
  if (libraryName) card.libraryName = libraryName;
  const taskCategories = strList(d['task_categories']);
  if (taskCategories) card.taskCategories = taskCategories;
  return card;
}

/** Hub license identifiers (lowercase) -> SPDX identifiers, for the common ones. */
const SPDX: Record<string, string> = {
  'apache-2.0': 'Apache-2.0',
  mit: 'MIT',
  'bsd-2-clause': 'BSD-2-Clause',
  'bsd-3-clause': 'BSD-3-Clause',
  'bsd-3-clause-clear': 'BSD-3-Clause-Clear',
  bsl: 'BSL-1.0',
  'bsl-1.0': 'BSL-1.0',
  'cc0-1.0': 'CC0-1.0',
  'cc-by-2.0': 'CC-BY-2.0',
  'cc-by-2.5': 'CC-BY-2.5',
  'cc-by-3.0': 'CC-BY-3.0',
  'cc-by-4.0': 'CC-BY-4.0',
  'cc-by-sa-3.0': 'CC-BY-SA-3.0',
  'cc-by-sa-4.0': 'CC-BY-SA-4.0',
  'cc-by-nc-2.0': 'CC-BY-NC-2.0',
  'cc-by-nc-3.0': 'CC-BY-NC-3.0',
  'cc-by-nc-4.0': 'CC-BY-NC-4.0',
  'cc-by-nd-4.0': 'CC-BY-ND-4.0',
  'cc-by-nc-nd-3.0': 'CC-BY-NC-ND-3.0',
  'cc-by-nc-nd-4.0': 'CC-BY-NC-ND-4.0',
  'cc-by-nc-sa-2.0': 'CC-BY-NC-SA-2.0',
  'cc-by-nc-sa-3.0': 'CC-BY-NC-SA-3.0',
  'cc-by-nc-sa-4.0': 'CC-BY-NC-SA-4.0',
  'gpl-2.0': 'GPL-2.0-only',
  'gpl-3.0': 'GPL-3.0-only',
  'lgpl-2.1': 'LGPL-2.1-only',
  'lgpl-3.0': 'LGPL-3.0-only',
  'agpl-3.0': 'AGPL-3.0-only',
  'afl-3.0': 'AFL-3.0',
  'artistic-2.0': 'Artistic-2.0',
  'ecl-2.0': 'ECL-2.0',
  'epl-1.0': 'EPL-1.0',
  'epl-2.0': 'EPL-2.0',
  'eupl-1.1': 'EUPL-1.1',
  'eupl-1.2': 'EUPL-1.2',
  isc: 'ISC',
  'mpl-2.0': 'MPL-2.0',
  'odbl': 'ODbL-1.0',
  'odc-by': 'ODC-By-1.0',
  'pddl': 'PDDL-1.0',
  'ms-pl': 'MS-PL',
  unlicense: 'Unlicense',
  wtfpl: 'WTFPL',
  zlib: 'Zlib',
  'openrail': 'OpenRAIL',
  'bigscience-openrail-m': 'BigScience-OpenRAIL-M',
  'creativeml-openrail-m': 'CreativeML-OpenRAIL-M',
  'bigscience-bloom-rail-1.0': 'BigScience-BLOOM-RAIL-1.0',
};

/**
 * The card's license as the Kitfile should carry it: an SPDX identifier when there is one, the
 * card's `license_name` for `other`, else the Hub's identifier as written (`llama3.1`, `gemma`).
 */
export function cardLicense(card: ModelCard): string | undefined {
  if (!card.license) return undefined;
  const lower = card.license.toLowerCase();
  if (lower === 'other' || lower === 'unknown') return card.licenseName ?? (lower === 'other' ? 'other' : undefined);
  return SPDX[lower] ?? card.license;
}
