import { resolve } from 'node:path';
import { NodeId } from '../../schema/index.ts';
import {
  defaultNatsAuthDir,
  exportCredentials,
  issueNodeCredentials,
  prepareServerSecurity,
  SecurityMaterialError,
} from '../../stack/index.ts';
import { parseFlags, type Command } from '../command.ts';
import { OperationFailed, UsageError } from '../usage-error.ts';

const usage = 'slotflow stack nats-auth [--auth-dir DIR] [--nodes ID,…] [--export DIR] [--json]';

/**
 * Makes the secured nats-server's material without starting it (for docker compose or a NATS
 * cluster run elsewhere): operator and accounts, CA and server certificate, the server
 * configuration, creds for the worker and the CLI, and creds for each node listed.
 */
export const stackNatsAuthCommand: Command = {
  path: ['stack', 'nats-auth'],
  usage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      {
        'auth-dir': { type: 'string' },
        nodes: { type: 'string' },
        export: { type: 'string' },
        json: { type: 'boolean' },
      },
      usage,
    );
    const nodeIds = (values.nodes ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    for (const id of nodeIds) {
      if (!NodeId.safeParse(id).success)
        throw new UsageError(`--nodes: expected node ids such as node-1, got '${id}'`);
    }
    const dir = values['auth-dir'] ? resolve(values['auth-dir']) : defaultNatsAuthDir();
    try {
      const security = await prepareServerSecurity(dir);
      const nodes = Object.fromEntries(
        await Promise.all(nodeIds.map(async (id) => [id, await issueNodeCredentials(dir, id)] as const)),
      );
      const exported = values.export
        ? await exportCredentials(security, resolve(values.export), nodeIds)
        : [];
      if (values.json) {
        process.stdout.write(JSON.stringify({ ...security, nodes, exported }) + '\n');
        return 0;
      }
      const lines = [
        `nats-server configuration ${security.configFile} (TLS CA ${security.ca})`,
        `worker creds ${security.workerCreds}`,
        `cli creds    ${security.cliCreds}`,
        ...Object.entries(nodes).map(([id, path]) => `node ${id} creds ${path}`),
        ...exported.map((e) => `exported ${e.holder}: ${e.creds}`),
      ];
      process.stdout.write(lines.join('\n') + '\n');
      return 0;
    } catch (err) {
      if (err instanceof SecurityMaterialError) throw new OperationFailed(err.message, { cause: err });
      throw err;
    }
  },
};
