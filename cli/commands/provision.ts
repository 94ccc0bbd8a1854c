import { defaultProvisionDeps, ProvisionError, provisionBinaries } from '../../stack/index.ts';
import { parseFlags, type Command } from '../command.ts';
import { OperationFailed } from '../usage-error.ts';

const usage = 'slotflow provision [--json]';

/** `slotflow provision`: locate or build the Temporal CLI and nats-server, print their paths. */
export const provisionCommand: Command = {
  path: ['provision'],
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, { json: { type: 'boolean' } }, usage);
    let tools;
    try {
      tools = await provisionBinaries(defaultProvisionDeps());
    } catch (err) {
      if (err instanceof ProvisionError) throw new OperationFailed(err.message, { cause: err });
      throw err;
    }
    if (values.json) {
      process.stdout.write(JSON.stringify(tools) + '\n');
      return 0;
    }
    for (const t of [tools.temporal, tools.nats]) {
      process.stdout.write(`${t.tool.padEnd(12)} ${t.path}  (${t.version}; ${t.source})\n`);
    }
    return 0;
  },
};
