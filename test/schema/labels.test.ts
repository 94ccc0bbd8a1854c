import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLabels, parseSelector, selectorMatches } from '../../schema/index.ts';

test('labels - key=value pairs parse, malformed ones say what is wrong', () => {
  assert.deepEqual(parseLabels('site=berlin,role=edge'), { site: 'berlin', role: 'edge' });
  assert.deepEqual(parseLabels(''), {});
  assert.match(String(parseLabels('site')), /'site' is not key=value/);
  assert.match(String(parseLabels('si te=x')), /not a valid label key/);
});

test('selector - equality, inequality and existence terms all have to match', () => {
  const terms = parseSelector('site=berlin,role!=db,gpu,!canary');
  assert.ok(Array.isArray(terms));
  assert.equal(selectorMatches(terms, { site: 'berlin', role: 'edge', gpu: 'yes' }), true);
  assert.equal(selectorMatches(terms, { site: 'berlin', role: 'db', gpu: 'yes' }), false);
  assert.equal(selectorMatches(terms, { site: 'berlin', gpu: 'yes', canary: 'true' }), false);
  assert.equal(selectorMatches(terms, { site: 'paris', gpu: 'yes' }), false);
  assert.equal(selectorMatches([], {}), true);
  assert.match(String(parseSelector('!a=b')), /only negates a bare key/);
});
