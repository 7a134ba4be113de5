import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cardFromData, cardLicense, frontMatter, parseModelCard } from '../../../src/hf/model-card.js';

describe('model cards', () => {
  it('reads the front matter fields kit uses', () => {
    const card = parseModelCard(
      [
        '---',
        'license: apache-2.0',
        'base_model: Qwen/Qwen2.5-7B',
        'pipeline_tag: text-generation',
        'library_name: transformers',
        'tags:',
        '  - chat',
        '  - qwen',
        '---',
        '# Model',
        '---',
        'not front matter',
      ].join('\n'),
    );
    assert.deepEqual(card, { license: 'apache-2.0', baseModel: ['Qwen/Qwen2.5-7B'], pipelineTag: 'text-generation', libraryName: 'transformers', tags: ['chat', 'qwen'] });
    assert.equal(cardLicense(card), 'Apache-2.0');
  });

  it('handles lists, other licenses, CRLF, a BOM and cards without front matter', () => {
    const card = parseModelCard('\ufeff---\r\nlicense: other\r\nlicense_name: llama3.1\r\nbase_model:\r\n- a/b\r\n- c/d\r\n---\r\nbody');
    assert.deepEqual(card.baseModel, ['a/b', 'c/d']);
    assert.equal(cardLicense(card), 'llama3.1');
    assert.equal(cardLicense({ license: 'gemma' }), 'gemma');
    assert.equal(cardLicense({ license: 'CC-BY-4.0' }), 'CC-BY-4.0');
    assert.equal(cardLicense({}), undefined);
    assert.deepEqual(parseModelCard('# just a readme'), {});
    assert.deepEqual(parseModelCard('---\nlicense: [unclosed\n---\n'), {});
    assert.equal(frontMatter('---\nx: 1\n'), undefined);
    assert.deepEqual(cardFromData({ task_categories: 'text-classification', tags: [1, '', 'x'] }), { taskCategories: ['text-classification'], tags: ['1', 'x'] });
    assert.deepEqual(cardFromData(null), {});
  });
});
