import { createLogger } from '../../runtime/log.ts';
import { parseFlags, type Command } from '../command.ts';
import { cliConfig } from '../context.ts';
import { UsageError } from '../usage-error.ts';

const usage = 'slotflow demo [--nodes N] [--exit] [--inject-failure] [--data-dir DIR]';

/** `slotflow demo`: the whole system on the local stack, in one command. */
export const demo: Command = {
  path: ['demo'],
  usage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      {
        nodes: { type: 'string' },
        exit: { type: 'boolean' },
        'inject-failure': { type: 'boolean' },
        'data-dir': { type: 'string' },
      },
      usage,
    );
    const nodes = values.nodes === undefined ? 8 : Number(values.nodes);
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > 64) {
      throw new UsageError(`--nodes: expected a whole number from 1 to 64, got '${values.nodes}'`);
    }
    const { home } = cliConfig();
    const { runDemo } = await import('../../demo/run-demo.ts');
    const { defaultStackDir } = await import('../../stack/paths.ts');
    const final = await runDemo({
      nodes,
      exit: values.exit ?? false,
      injectFailure: values['inject-failure'] ?? false,
      home,
      stackDir: values['data-dir'] ?? defaultStackDir(),
      logger: createLogger('demo'),
      out: process.stdout,
    });
    return final.status === 'succeeded' ? 0 : 1;
  },
};
