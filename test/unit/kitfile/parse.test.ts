import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  KitfileError,
  formatProblems,
  isArtifactReference,
  normalizeKitfilePath,
  parseKitfile,
  serializeKitfile,
  type KitfileProblem,
} from '../../../src/kitfile/load.js';
import { MAX_KITFILE_BYTES } from '../../../src/kitfile/names.js';
import type { Kitfile } from '../../../src/kitfile/schema.js';

/** The problems parseKitfile reports for `text` (fails the test when it accepts the text). */
function problemsOf(text: string, file = 'Kitfile'): KitfileProblem[] {
  try {
    parseKitfile(text, file);
  } catch (err) {
    assert.ok(err instanceof KitfileError, `expected KitfileError, got ${String(err)}`);
    assert.equal(err.code, 'KITFILE_INVALID');
    return err.problems;
  }
  assert.fail('parseKitfile accepted the text');
}

/** `line:col field` of each problem, to compare positions at a glance. */
function where(problems: KitfileProblem[]): string[] {
  return problems.map((p) => `${p.line}:${p.column} ${p.field}`);
}

function only(problems: KitfileProblem[]): KitfileProblem {
  assert.equal(problems.length, 1, formatProblems(problems).join('\n'));
  return problems[0]!;
}

describe('parseKitfile: valid Kitfiles', () => {
  it('reads a full Kitfile with every section', () => {
    const k = parseKitfile(
      [
        'manifestVersion: 1.0.0',
        'package:',
        '  name: demo',
        '  version: 1.2.3',
        '  description: A demo',
        '  license: Apache-2.0',
        '  authors: [Jane, John]',
        'model:',
        '  name: m',
        '  path: models/model.safetensors',
        '  framework: pytorch',
        '  format: safetensors',
        '  parameters:',
        '    temperature: 0.7',
        '    nested: {list: [1, 2], flag: true}',
        '  parts:',
        '    - path: models/tokenizer.json',
        '      type: tokenizer',
        '    - path: models/lora.safetensors',
        '      type: lora-weights_v2.1',
        'datasets:',
        '  - name: train',
        '    path: data/train.csv',
        '    parameters: [a, 1]',
        'code:',
        '  - path: src',
        'docs:',
        '  - path: README.md',
        'prompts:',
        '  - name: system',
        '    path: prompts/system.prompt.md',
        '',
      ].join('\n'),
      'Kitfile',
    );
    assert.equal(k.package?.authors?.[1], 'John');
    assert.deepEqual(k.model?.parameters, { temperature: 0.7, nested: { list: [1, 2], flag: true } });
    assert.equal(k.model?.parts?.[1]?.type, 'lora-weights_v2.1');
    assert.deepEqual(k.datasets?.[0]?.parameters, ['a', 1]);
    assert.equal(k.prompts?.[0]?.name, 'system');
  });

  it('accepts manifestVersion 1.0.0, v1.0.0 and 1.0 (also as a YAML number)', () => {
    for (const v of ['1.0.0', 'v1.0.0', '1.0', '"1.0"']) {
      const k = parseKitfile(`manifestVersion: ${v}\ncode:\n  - path: src\n`, 'Kitfile');
      assert.equal(k.manifestVersion, v.replaceAll('"', ''));
    }
  });

  it('keeps numbers and booleans in string fields as written, but typed inside parameters', () => {
    const k = parseKitfile(
      'manifestVersion: 1.0.0\npackage:\n  version: 1.10\n  name: true\nmodel:\n  path: m.bin\n  version: 0x1F\n  parameters: {lr: 1.10, on: true}\n',
      'Kitfile',
    );
    assert.equal(k.package?.version, '1.10'); // a float would have lost the trailing zero
    assert.equal(k.package?.name, 'true');
    assert.equal(k.model?.version, '0x1F');
    assert.deepEqual(k.model?.parameters, { lr: 1.1, on: true });
  });

  it('treats `key:` with no value as absent', () => {
    const k = parseKitfile('manifestVersion: 1.0.0\npackage:\n  name: x\n  description:\nmodel:\n  path: m.gguf\n', 'Kitfile');
    assert.deepEqual(k.package, { name: 'x' });
    assert.ok(!('description' in k.package!));
  });

  it('accepts paths that normalise inside the context', () => {
    const k = parseKitfile(
      'manifestVersion: 1.0.0\ncode:\n  - path: ./a\n  - path: b/\n  - path: c//d\n  - path: e/../f\n  - path: .\n',
      'Kitfile',
    );
    assert.equal(k.code?.length, 5);
  });

  it('accepts an artifact reference as model.path', () => {
    for (const ref of ['registry.example.com/team/base:1.0', `localhost:5000/base@sha256:${'a'.repeat(64)}`]) {
      const k = parseKitfile(`manifestVersion: 1.0.0\nmodel:\n  path: ${ref}\n`, 'Kitfile');
      assert.equal(k.model?.path, ref);
    }
  });
});

describe('parseKitfile: problems', () => {
  it('reports every problem at once, each at the line:column of its node, sorted', () => {
    const text = [
      'manifestVersion: 1.0.0', // 1
      'package:', // 2
      '  name: demo', // 3
      '  authors: Jane', // 4  authors must be a list
      'model:', // 5
      '  path: /abs/model.gguf', // 6  absolute
      '  parts:', // 7
      '    - path: C:\\weights\\a.bin', // 8  windows path
      '      type: not valid', // 9  bad part type
      'datasets:', // 10
      '  - name: train', // 11
      '    path: http://example.com/train.csv', // 12 URL
      '  - name: eval', // 13 path missing
      '    pth: data/eval.csv', // 14 unknown key
      'code:', // 15
      '  - path: src', // 16
      '  - path: ./src/', // 17 duplicate of code[0]
      'docs:', // 18
      "  - path: ''", // 19 empty
      '',
    ].join('\n');
    const problems = problemsOf(text);
    assert.deepEqual(where(problems), [
      '4:12 package.authors',
      '6:9 model.path',
      '8:13 model.parts[0].path',
      '9:13 model.parts[0].type',
      '12:11 datasets[0].path',
      '13:5 datasets[1].path',
      '14:5 datasets[1].pth',
      '17:11 code[1].path',
      '19:11 docs[0].path',
    ]);
    const lines = formatProblems(problems);
    assert.equal(lines[0], 'Kitfile:4:12: package.authors: must be a list, not a string');
    assert.match(lines[1]!, /^Kitfile:6:9: model\.path: "\/abs\/model\.gguf" is absolute/);
    assert.match(lines[2]!, /Windows path/);
    assert.match(lines[4]!, /is a URL/);
    assert.equal(lines[5], 'Kitfile:13:5: datasets[1].path: is required');
    assert.equal(lines[6], 'Kitfile:14:5: datasets[1].pth: unknown field "pth" (did you mean "path"?)');
    assert.equal(lines[7], 'Kitfile:17:11: code[1].path: duplicate path "src": already used by code[0].path');
    assert.equal(lines[8], 'Kitfile:19:11: docs[0].path: must not be empty');
  });

  it('has a one-line summary message naming the file and the count', () => {
    try {
      parseKitfile('manifestVersion: 9\nfoo: 1\n', 'ci/Kitfile');
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof KitfileError);
      assert.equal(err.message, 'ci/Kitfile has 3 problems'); // version, unknown key, nothing to pack
      assert.ok(!err.message.includes('\n'));
      assert.ok(err.problems.every((p) => p.file === 'ci/Kitfile'));
    }
  });

  it('points an unknown key at the key, with a suggestion', () => {
    const p = only(problemsOf('manifestVersion: 1.0.0\nmodel:\n  path: m.gguf\ndataset:\n  - path: d.csv\n'));
    assert.deepEqual([p.line, p.column, p.field], [4, 1, 'dataset']);
    assert.match(p.message, /unknown field "dataset" \(did you mean "datasets"\?\)/);
  });

  it('reports an unknown key even when it has no value', () => {
    const p = only(problemsOf('manifestVersion: 1.0.0\nmodel:\n  path: m.gguf\n  colour:\n'));
    assert.deepEqual([p.line, p.column, p.field], [4, 3, 'model.colour']);
  });

  it('rejects unsupported and missing manifest versions', () => {
    const bad = only(problemsOf('manifestVersion: 2.0.0\ncode:\n  - path: src\n'));
    assert.deepEqual([bad.line, bad.column, bad.field], [1, 18, 'manifestVersion']);
    assert.match(bad.message, /unsupported version "2.0.0"/);
    const missing = only(problemsOf('code:\n  - path: src\n'));
    assert.deepEqual([missing.line, missing.column, missing.field, missing.message], [1, 1, 'manifestVersion', 'is required']);
  });

  it('requires something to pack', () => {
    const p = only(problemsOf('manifestVersion: 1.0.0\npackage:\n  name: x\ncode: []\n'));
    assert.equal(p.field, '');
    assert.match(p.message, /nothing to pack/);
    assert.equal(formatProblems([p])[0], `Kitfile:1:1: ${p.message}`); // no empty field part
  });

  it('rejects a document that is empty, a list, or several documents', () => {
    assert.match(only(problemsOf('')).message, /empty/);
    assert.match(only(problemsOf('# just a comment\n')).message, /empty/);
    assert.match(only(problemsOf('- a\n- b\n')).message, /must be a YAML mapping/);
    const multi = problemsOf('manifestVersion: 1.0.0\ncode: [{path: a}]\n---\nx: 1\n');
    assert.match(multi[0]!.message, /single YAML document/);
  });

  it('reports YAML syntax errors with their position', () => {
    const tab = only(problemsOf('manifestVersion: 1.0.0\nmodel:\n\tpath: x\n'));
    assert.deepEqual([tab.line, tab.column, tab.field], [3, 1, '']);
    assert.match(tab.message, /^YAML syntax error: Tabs are not allowed/);
    const unclosed = problemsOf('manifestVersion: 1.0.0\nmodel: {path: a\ncode: []\n');
    assert.match(unclosed[0]!.message, /^YAML syntax error/);
    assert.equal(unclosed[0]!.line, 3);
  });

  it('reports duplicate YAML keys together with schema problems', () => {
    const problems = problemsOf('manifestVersion: 1.0.0\nmodel:\n  path: a.gguf\n  path: b.gguf\ncode:\n  - path: ../up\n');
    assert.deepEqual(where(problems), ['4:3 model.path', '6:11 code[0].path']);
    assert.match(problems[0]!.message, /duplicate key/);
    assert.match(problems[1]!.message, /outside the context/);
  });

  it('rejects paths that leave the context, with backslashes, or with schemes', () => {
    const cases: Array<[string, RegExp]> = [
      ['../x', /outside the context/],
      ['..', /outside the context/],
      ['a/../../x', /outside the context/],
      ['/etc/passwd', /absolute/],
      ['a\\b', /backslash/],
      ['D:/data', /Windows path/],
      ['s3://bucket/key', /URL/],
      ['https://example.com/x', /URL/],
      ['hf://org/model', /URL/],
      ['   ', /must not be empty/],
      ['a\u0000b', /control characters/],
    ];
    for (const [path, re] of cases) {
      const p = only(problemsOf(`manifestVersion: 1.0.0\ncode:\n  - path: ${JSON.stringify(path)}\n`));
      assert.equal(p.field, 'code[0].path', path);
      assert.match(p.message, re, path);
    }
  });

  it('rejects an artifact reference anywhere but model.path', () => {
    const p = only(problemsOf('manifestVersion: 1.0.0\ndatasets:\n  - path: docker.io/org/data:latest\n'));
    assert.equal(p.field, 'datasets[0].path');
    assert.match(p.message, /only model.path may name another artifact/);
  });

  it('reports the later duplicate in the file and names the first, across sections', () => {
    // code comes before datasets in the text: the dataset entry is the second occurrence
    const p = only(problemsOf('manifestVersion: 1.0.0\ncode:\n  - path: data/\ndatasets:\n  - path: ./data\n'));
    assert.deepEqual([p.line, p.field], [5, 'datasets[0].path']);
    assert.match(p.message, /already used by code\[0\]\.path/);
    const q = only(problemsOf('manifestVersion: 1.0.0\nmodel:\n  path: m.gguf\n  parts:\n    - path: ./m.gguf\n'));
    assert.equal(q.field, 'model.parts[0].path');
  });

  it('checks part types against the KitOps syntax', () => {
    const long = 'x'.repeat(65);
    const p = problemsOf(`manifestVersion: 1.0.0\nmodel:\n  path: m\n  parts:\n    - {path: a, type: "-lead"}\n    - {path: b, type: ${long}}\n    - {path: c, type: ""}\n`);
    assert.deepEqual(where(p), ['5:23 model.parts[0].type', '6:23 model.parts[1].type']);
    assert.match(p[1]!.message, /longer than 64/);
  });

  it('rejects wrong types for sections and entries', () => {
    const p = problemsOf('manifestVersion: 1.0.0\nmodel: just-a-string\ndatasets:\n  path: x\ncode:\n  - src\n');
    assert.deepEqual(where(p), ['2:8 model', '4:3 datasets', '6:5 code[0]']);
    assert.match(p[0]!.message, /must be a mapping/);
    assert.match(p[1]!.message, /must be a list, not a mapping/);
  });

  it('refuses an alias bomb quickly', () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i <= 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      lines.push(`${cur}: &${cur} [*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev}]`);
    }
    const text = `manifestVersion: 1.0.0\ncode:\n  - path: src\nmodel:\n  path: m\n  parameters:\n${lines.map((l) => `    ${l}`).join('\n')}\n`;
    const started = Date.now();
    const p = only(problemsOf(text));
    assert.ok(Date.now() - started < 2000, 'took too long');
    assert.match(p.message, /alias bomb/);
    assert.equal(p.line, 8); // the first alias, in `b: &b [*a, ...]`
  });

  it('reports an alias to an undefined anchor', () => {
    const p = only(problemsOf('manifestVersion: 1.0.0\ncode:\n  - path: *nowhere\n'));
    assert.equal(p.line, 3);
    assert.match(p.message, /alias/);
  });

  it('accepts a few ordinary aliases', () => {
    const k = parseKitfile('manifestVersion: 1.0.0\ndatasets:\n  - path: a.csv\n    license: &l MIT\n  - path: b.csv\n    license: *l\n', 'K');
    assert.equal(k.datasets?.[1]?.license, 'MIT');
  });

  it('refuses text over 1 MiB before parsing', () => {
    const text = `manifestVersion: 1.0.0\ncode:\n  - path: src\n# ${'x'.repeat(MAX_KITFILE_BYTES)}\n`;
    const p = only(problemsOf(text));
    assert.match(p.message, /at most 1048576 bytes \(1 MiB\)/);
  });

  it('refuses deeply nested collections quickly', () => {
    const started = Date.now();
    const flow = only(problemsOf(`manifestVersion: 1.0.0\nmodel:\n  parameters: ${'['.repeat(500_000)}\n`));
    assert.match(flow.message, /nested more than 64 levels/);
    assert.equal(flow.line, 3);
    const block = problemsOf(`manifestVersion: 1.0.0\nmodel:\n  parameters:\n    ${'? '.repeat(200)}x\n`);
    assert.ok(block.some((p) => /nested|key must be a plain value/.test(p.message)));
    assert.ok(Date.now() - started < 3000, 'took too long');
  });
});

describe('normalizeKitfilePath', () => {
  it('gives the clean posix relative form', () => {
    const cases: Array<[string, string]> = [
      ['./x', 'x'],
      ['x/', 'x'],
      ['x//y', 'x/y'],
      ['a/../b', 'b'],
      ['./a/./b/', 'a/b'],
      ['.', '.'],
      ['./', '.'],
      ['', '.'],
      ['a/..', '.'],
      ['../x', '../x'],
    ];
    for (const [input, want] of cases) assert.equal(normalizeKitfilePath(input), want, input);
  });
});

describe('isArtifactReference', () => {
  it('needs a registry host and a tag or digest', () => {
    assert.equal(isArtifactReference('registry.example.com/team/base:1.0'), true);
    assert.equal(isArtifactReference('localhost:5000/base:v1'), true);
    assert.equal(isArtifactReference(`ghcr.io/org/m@sha256:${'0'.repeat(64)}`), true);
    assert.equal(isArtifactReference('registry.example.com/team/base'), false); // no tag
    assert.equal(isArtifactReference('team/base:1.0'), false); // no host
    assert.equal(isArtifactReference('models/model.gguf'), false);
    assert.equal(isArtifactReference('./models/x:1'), false);
    assert.equal(isArtifactReference('registry.example.com/Team/Base:1.0'), false); // uppercase repo
    assert.equal(isArtifactReference('https://registry.example.com/team/base:1.0'), false);
  });
});

describe('serializeKitfile', () => {
  it('writes sections and fields in canonical order and round-trips', () => {
    const k: Kitfile = {
      prompts: [{ path: 'p.prompt', name: 'p' }],
      docs: [{ description: 'readme', path: 'README.md' }],
      datasets: [{ path: 'data', name: 'd', parameters: { rows: 10 } }],
      code: [{ path: 'src' }],
      model: { parts: [{ type: 'config', path: 'config.json' }], path: 'm.safetensors', version: '1.0', description: undefined },
      package: { authors: ['A'], name: 'pkg' },
      manifestVersion: '1.0.0',
    };
    const text = serializeKitfile(k);
    const topKeys = text.split('\n').filter((l) => /^\w/.test(l)).map((l) => l.split(':')[0]);
    assert.deepEqual(topKeys, ['manifestVersion', 'package', 'model', 'code', 'datasets', 'docs', 'prompts']);
    assert.ok(text.indexOf('  name: pkg') < text.indexOf('  authors:'));
    assert.ok(text.indexOf('  path: m.safetensors') < text.indexOf('  version:'));
    assert.ok(!text.includes('description: null') && !text.includes('undefined'));
    assert.match(text, /version: "1\.0"/); // quoted, so it reads back as a string
    const back = parseKitfile(text, 'Kitfile');
    assert.equal(back.model?.version, '1.0');
    assert.deepEqual(back.datasets, k.datasets);
    assert.deepEqual(back.model?.parts, [{ path: 'config.json', type: 'config' }]);
  });
});
