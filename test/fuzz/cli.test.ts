// Fuzz: the CLI's argument parsers, run in-process through the commands themselves (the
// catalog's run(argv)). argv is drawn from each command's own flags with random, edge and
// missing values, unknown flags and stray arguments. The environment points SLOTFLOW_HOME at a
// scratch directory and TEMPORAL_ADDRESS at a value the settings schema refuses, so a command
// whose flags all parse stops at the connection settings (a UsageError naming TEMPORAL_ADDRESS)
// instead of dialling anything. Commands that build, provision or start servers are left out.
// Properties: a command returns an exit code or throws the CLI's own errors with a message that
// names what was wrong (a flag, an argument, the usage line); never a TypeError or the like.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CATALOG } from '../../cli/catalog.ts';
import { UsageError } from '../../cli/usage-error.ts';
import { cleanupDirs, tempDir } from '../p2p/helpers.ts';
import { fuzz } from './harness.ts';

test.after(cleanupDirs);

/** Commands that would build images, provision tools, start servers or run an agent. */
const LEFT_OUT = new Set([
  'stack up',
  'stack status',
  'stack down',
  'stack nats-auth',
  'provision',
  'worker',
  'lab rootfs',
  'agent',
  'keys rauc-init',
  'image build',
  'rollout start',
  'demo',
]);
const commands = CATALOG.filter((c) => !LEFT_OUT.has(c.path.join(' ')));
const loaded = await Promise.all(
  commands.map(async (c) => ({ name: c.path.join(' '), command: await c.load() })),
);

const values = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom(
    '',
    '-',
    '--',
    '0',
    '-1',
    '1e9',
    'NaN',
    '10%',
    '101%',
    '1,10%,100%',
    'a=b',
    '=',
    'r-1',
    'n-1',
  ),
  fc.constantFrom('sha256:' + 'a'.repeat(64), '30s', '-5m', '99999999999999999999', '../../x', '💥', ' '),
);

/** argv for one command: its own flags (from its usage line) with values, and some noise. */
function argvFor(usage: string): fc.Arbitrary<string[]> {
  const flags = [...new Set(usage.match(/--[a-z][a-z0-9-]*/g) ?? [])];
  const token = fc.oneof(
    { weight: 4, arbitrary: flags.length > 0 ? fc.constantFrom(...flags) : fc.constant('--json') },
    { weight: 4, arbitrary: values },
    {
      weight: 2,
      arbitrary: fc
        .tuple(flags.length > 0 ? fc.constantFrom(...flags) : fc.constant('--x'), values)
        .map(([f, v]) => `${f}=${v}`),
    },
    { weight: 1, arbitrary: fc.constantFrom('--nope', '-x', '--help=1', '---', '--json') },
  );
  return fc.array(token, { maxLength: 6 });
}

const arb = fc
  .nat({ max: loaded.length - 1 })
  .chain((i) => argvFor(loaded[i]!.command.usage).map((argv) => ({ name: loaded[i]!.name, argv })));
const byName = new Map(loaded.map((c) => [c.name, c.command]));

test('fuzz - CLI arguments: an exit code or a usage error that says what was wrong', async () => {
  const home = await tempDir();
  const saved = { ...process.env };
  Object.assign(process.env, {
    SLOTFLOW_HOME: home,
    TEMPORAL_ADDRESS: 'not a host and port',
    NATS_URL: 'nats://127.0.0.1:1',
  });
  try {
    await fuzz('cli-arguments', arb, async ({ name, argv }) => {
      const command = byName.get(name)!;
      let code: number | undefined;
      try {
        code = await command.run(argv);
      } catch (err) {
        const e = err as Error;
        assert.ok(
          !(err instanceof TypeError || err instanceof ReferenceError || err instanceof SyntaxError),
          `slotflow ${name} ${argv.join(' ')}: ${e?.name}: ${e?.message}`,
        );
        assert.ok(
          typeof e.message === 'string' && e.message.trim().length > 0,
          `slotflow ${name}: an error without a message`,
        );
        assert.doesNotMatch(
          e.message,
          /\bundefined\b|\[object Object\]/,
          `slotflow ${name} ${argv.join(' ')}: ${e.message}`,
        );
        if (err instanceof UsageError) {
          // A flag, the usage line, an argument's name from the usage line (ID), or what came.
          const operands = command.usage.match(/\b[A-Z][A-Z_]+\b/g) ?? [];
          const named =
            /usage:|TEMPORAL_ADDRESS|--[a-z]/.test(err.message) ||
            operands.some((o) => err.message.includes(o)) ||
            argv.some((a) => a.length > 0 && err.message.includes(a));
          assert.ok(
            named,
            `slotflow ${name} ${argv.join(' ')}: the usage error names nothing: ${err.message}`,
          );
        }
        return;
      }
      assert.ok([0, 1, 2].includes(code), `slotflow ${name} exited ${code}`);
    });
  } finally {
    for (const k of ['SLOTFLOW_HOME', 'TEMPORAL_ADDRESS', 'NATS_URL']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});
