import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RolloutSpec,
  SchemaError,
  parseWith,
  parseDuration,
  thresholdBreached,
  Threshold,
} from '../../schema/index.ts';

const base = { id: 'r-1', image: { type: 'rootfs', path: '/tmp/rootfs' }, version: '1.2.0' };

test('rollout spec - defaults and text forms parse to structured values', () => {
  const spec = parseWith(
    RolloutSpec,
    {
      ...base,
      waves: '1,10%,50%,100%',
      selector: 'site=berlin,role!=db',
      failureThreshold: '10%',
      soak: '1m30s',
    },
    'rollout spec',
  );
  assert.deepEqual(spec.waves, [
    { type: 'count', count: 1 },
    { type: 'percent', percent: 10 },
    { type: 'percent', percent: 50 },
    { type: 'percent', percent: 100 },
  ]);
  assert.deepEqual(spec.selector, [
    { op: '=', key: 'site', value: 'berlin' },
    { op: '!=', key: 'role', value: 'db' },
  ]);
  assert.deepEqual(spec.failureThreshold, { type: 'percent', percent: 10 });
  assert.equal(spec.soak, 90_000);
  assert.equal(spec.maxUnavailable, 1);
  assert.equal(spec.onFailure, 'pause');
  assert.equal(spec.timeouts.accept, 30_000);
});

test('rollout spec - default waves apply when none are given', () => {
  const spec = parseWith(RolloutSpec, base, 'rollout spec');
  assert.equal(spec.waves.length, 4);
});

function problemsOf(input: unknown): string[] {
  try {
    parseWith(RolloutSpec, input, 'rollout spec');
  } catch (err) {
    assert.ok(err instanceof SchemaError);
    return [...err.problems];
  }
  assert.fail('expected the spec to be rejected');
}

test('rollout spec - bad waves name the field, the value and what was expected', () => {
  const [problem] = problemsOf({ ...base, waves: '1,abc,100%' });
  assert.match(problem ?? '', /^waves: expected waves such as 1,10%,50%,100%.*'abc'.*got "1,abc,100%"$/);
});

test('rollout spec - waves that do not end at 100% or shrink are rejected', () => {
  assert.match(
    problemsOf({ ...base, waves: '1,50%' }).join('\n'),
    /waves: expected the last wave to be 100%/,
  );
  assert.match(
    problemsOf({ ...base, waves: '50%,10%,100%' }).join('\n'),
    /waves: expected percentages to grow/,
  );
  assert.match(problemsOf({ ...base, waves: '0,100%' }).join('\n'), /at least 1 node/);
});

test('rollout spec - each bad field is reported with its path', () => {
  const problems = problemsOf({
    ...base,
    id: 'has spaces',
    maxUnavailable: 0,
    failureThreshold: 'ten',
    soak: '30',
    onFailure: 'explode',
    selector: 'a==b',
    timeouts: { accept: 'soon' },
    extra: true,
  }).join('\n');
  assert.match(problems, /^id: expected a rollout id .* got "has spaces"$/m);
  assert.match(problems, /^maxUnavailable: expected at least 1 node at a time, got 0$/m);
  assert.match(problems, /^failureThreshold: expected a failure threshold such as 3 .* got "ten"$/m);
  assert.match(problems, /^soak: expected a duration such as 500ms, 30s.* got "30"$/m);
  assert.match(problems, /^onFailure: .*got "explode"$/m);
  assert.match(problems, /^selector: expected a selector such as site=berlin.*got "a==b"$/m);
  assert.match(problems, /^timeouts\.accept: expected a duration.*got "soon"$/m);
  assert.match(problems, /extra/);
});

test('rollout spec - an OCI image needs a reference', () => {
  assert.match(
    problemsOf({ ...base, image: { type: 'oci', reference: '' } }).join('\n'),
    /^image\.reference: expected an OCI reference/m,
  );
});

test('duration - text forms and rejections', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('30'), undefined);
  assert.equal(parseDuration('30 s'), undefined);
  assert.equal(parseDuration('s'), undefined);
  assert.equal(parseDuration(''), undefined);
});

test('threshold - count and percentage semantics', () => {
  const pct = Threshold.parse('10%');
  assert.equal(thresholdBreached(pct, 1, 10), false);
  assert.equal(thresholdBreached(pct, 2, 10), true);
  assert.equal(thresholdBreached(pct, 0, 0), false);
  const count = Threshold.parse('3');
  assert.equal(thresholdBreached(count, 3, 4), false);
  assert.equal(thresholdBreached(count, 4, 100), true);
  assert.equal(Threshold.safeParse('150%').success, false);
});
