import { createLogger } from '../../runtime/log.ts';
import { parseFlags, type Command } from '../command.ts';
import { cliConfig } from '../context.ts';
import { UsageError } from '../usage-error.ts';

const usage = 'slotflow demo [--nodes N] [--vm] [--inject-failure [health|boot]] [--exit] [--data-dir DIR]';

/**
 * `--inject-failure` takes an optional value; parseArgs cannot, so a bare flag is given its
 * default (`health`) before parsing.
 */
function withFailureValue(argv: readonly string[]): string[] {
  return argv.flatMap((arg, i) =>
    arg === '--inject-failure' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))
      ? [arg, 'health']
      : [arg],
  );
}

/** `slotflow demo`: the whole system on the local stack, in one command. */
export const demo: Command = {
  path: ['demo'],
  usage,
  async run(argv) {
    const { values } = parseFlags(
      withFailureValue(argv),
      {
        nodes: { type: 'string' },
        vm: { type: 'boolean' },
        exit: { type: 'boolean' },
        'inject-failure': { type: 'string' },
        'data-dir': { type: 'string' },
      },
      usage,
    );
    const vm = values.vm ?? false;
    const maxNodes = vm ? 4 : 64;
    const nodes = values.nodes === undefined ? (vm ? 2 : 8) : Number(values.nodes);
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > maxNodes) {
      throw new UsageError(
        `--nodes: expected a whole number from 1 to ${maxNodes}${vm ? ' (QEMU VMs)' : ''}, got '${values.nodes}'`,
      );
    }
    const failure = values['inject-failure'];
    if (failure !== undefined && failure !== 'health' && failure !== 'boot') {
      throw new UsageError(`--inject-failure: expected health or boot, got '${failure}'`);
    }
    if (failure === 'boot' && !vm) {
      throw new UsageError('--inject-failure boot needs --vm: only a VM boots a kernel');
    }
    const { home } = cliConfig();
    if (vm) {
      const { runVmDemo } = await import('../../demo/run-vm-demo.ts');
      const { defaultStackDir } = await import('../../stack/paths.ts');
      const final = await runVmDemo({
        nodes,
        exit: values.exit ?? false,
        injectFailure: failure,
        home,
        stackDir: values['data-dir'] ?? defaultStackDir(),
        logger: createLogger('demo'),
        out: process.stdout,
      });
      return final.status === 'succeeded' ? 0 : 1;
    }
    const { runDemo } = await import('../../demo/run-demo.ts');
    const { defaultStackDir } = await import('../../stack/paths.ts');
    const final = await runDemo({
      nodes,
      exit: values.exit ?? false,
      injectFailure: failure !== undefined,
      home,
      stackDir: values['data-dir'] ?? defaultStackDir(),
      logger: createLogger('demo'),
      out: process.stdout,
    });
    return final.status === 'succeeded' ? 0 : 1;
  },
};
