/**
 * --include / --exclude patterns with the meaning `hf download` gives them (huggingface_hub
 * filter_repo_objects, Python fnmatch): matched against the whole path in the repository, `*`
 * matches any characters including `/`, `?` one character, `[abc]` / `[!abc]` a set; a pattern
 * ending in `/` means everything under that folder. So `*.safetensors` matches at any depth and
 * `onnx/` takes the onnx folder.
 */

function toRegExp(pattern: string): RegExp {
  const p = pattern.endsWith('/') ? `${pattern}*` : pattern;
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = p.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = p.slice(i + 1, end);
      const negate = body.startsWith('!');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^' : ''}${body.replace(/\\/g, '\\\\').replace(/\^/g, '\\^')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

export interface PathFilter {
  (path: string): boolean;
}

/** A predicate: included (no include patterns, or one matches) and not excluded. */
export function pathFilter(include: string[] = [], exclude: string[] = []): PathFilter {
  const inc = include.map(toRegExp);
  const exc = exclude.map(toRegExp);
  return (path) => (inc.length === 0 || inc.some((r) => r.test(path))) && !exc.some((r) => r.test(path));
}
