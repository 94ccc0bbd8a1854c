import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ESLint } from 'eslint';

const eslint = new ESLint({ cwd: new URL('../..', import.meta.url).pathname });

async function problems(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).map((m) => `${m.ruleId}: ${m.message}`);
}

test('lint - workflow code may not import Node built-ins, I/O libraries or activities at runtime', async () => {
  const found = await problems(
    'workflows/zz-probe.ts',
    [
      "import { readFile } from 'node:fs/promises';",
      "import { connect } from '@nats-io/transport-node';",
      "import { execa } from 'execa';",
      "import { createActivities } from '../activities/index.ts';",
      'export const probe = [readFile, connect, execa, createActivities, process.env];',
      '',
    ].join('\n'),
  );
  assert.equal(found.filter((p) => p.startsWith('no-restricted-imports')).length, 4, found.join('\n'));
  assert.ok(found.some((p) => p.startsWith('no-restricted-globals') && p.includes('process')));
});

test('lint - schema code follows the same sandbox rules; type-only activity imports are fine in workflows', async () => {
  const schema = await problems(
    'schema/zz-probe.ts',
    "import { createHash } from 'node:crypto';\nexport const h = createHash;\n",
  );
  assert.ok(schema.some((p) => p.startsWith('no-restricted-imports')));
  const typeOnly = await problems(
    'workflows/zz-probe.ts',
    "import type { Activities } from '../activities/index.ts';\nexport type A = Activities;\n",
  );
  assert.deepEqual(typeOnly, []);
});

test('lint - code outside the sandbox may use Node built-ins', async () => {
  assert.deepEqual(
    await problems(
      'activities/zz-probe.ts',
      "import { readFile } from 'node:fs/promises';\nexport const r = readFile;\n",
    ),
    [],
  );
});
