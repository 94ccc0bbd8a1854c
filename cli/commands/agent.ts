import { AgentConfigError, loadAgentConfig, runAgent } from '../../node-agent/index.ts';
import { createLogger } from '../../runtime/log.ts';
import { SchemaError } from '../../schema/index.ts';
import { parseFlags, type Command } from '../command.ts';
import { cliConfig } from '../context.ts';
import { UsageError } from '../usage-error.ts';

const usage =
  'slotflow agent --node-id ID --data-dir DIR [--labels k=v,…] [--slot-driver file|grub|kairos|rauc] ' +
  '[--reboot simulate|command] [--reboot-command "systemctl reboot"] [--p2p-listen ADDR,…] [--bootstrap ADDR,…] [--mesh-key FILE] ' +
  '[--config FILE] [--trusted-keys DIR] [--health-check NAME=CMD …] [--metrics-listen HOST:PORT] ' +
  '[--initial-version V] [--heartbeat-interval 15s] [--max-command-lifetime 24h] [--artifact-dir DIR …] [--artifact-url URL …]';

/** `slotflow agent`: the node agent daemon (a systemd unit on a real node). */
export const agent: Command = {
  path: ['agent'],
  usage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      {
        'node-id': { type: 'string' },
        'data-dir': { type: 'string' },
        labels: { type: 'string' },
        'slot-driver': { type: 'string' },
        reboot: { type: 'string' },
        'reboot-command': { type: 'string' },
        'p2p-listen': { type: 'string' },
        bootstrap: { type: 'string' },
        'mesh-key': { type: 'string' },
        config: { type: 'string' },
        'trusted-keys': { type: 'string' },
        'health-check': { type: 'string', multiple: true },
        'metrics-listen': { type: 'string' },
        'initial-version': { type: 'string' },
        'heartbeat-interval': { type: 'string' },
        'max-command-lifetime': { type: 'string' },
        'artifact-dir': { type: 'string', multiple: true },
        'artifact-url': { type: 'string', multiple: true },
      },
      usage,
    );
    const connection = cliConfig();
    let config;
    try {
      config = await loadAgentConfig({
        flags: {
          config: values.config,
          nodeId: values['node-id'],
          dataDir: values['data-dir'],
          labels: values.labels,
          slotDriver: values['slot-driver'],
          reboot: values.reboot,
          rebootCommand: values['reboot-command'],
          p2pListen: values['p2p-listen'],
          bootstrap: values.bootstrap,
          meshKey: values['mesh-key'],
          trustedKeys: values['trusted-keys'],
          healthCheck: values['health-check'],
          metricsListen: values['metrics-listen'],
          initialVersion: values['initial-version'],
          heartbeatInterval: values['heartbeat-interval'],
          maxCommandLifetime: values['max-command-lifetime'],
          artifactDir: values['artifact-dir'],
          artifactUrl: values['artifact-url'],
        },
        env: process.env,
        home: connection.home,
      });
    } catch (err) {
      if (err instanceof SchemaError || err instanceof AgentConfigError) {
        throw new UsageError(`${err.message}\nusage: ${usage}`, { cause: err });
      }
      throw err;
    }
    return runAgent(config, connection, createLogger('agent').child({ node: config.nodeId }));
  },
};
