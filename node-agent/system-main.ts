// The simulated machine's booted system: started (and restarted after each reboot) by the
// supervisor with the validated configuration and a boot id in its environment.
import { loadConnectionConfig } from '../runtime/config.ts';
import { createLogger } from '../runtime/log.ts';
import { AgentConfig, parseWith } from '../schema/index.ts';
import { startAgent } from './agent.ts';
import { currentBootId } from './boot-id.ts';
import { describeError } from './errors.ts';
import { AGENT_CONFIG_ENV, CONFIG_EXIT_CODE } from './supervisor.ts';

// The supervisor is the power supply: when it is gone (even SIGKILLed), this system dies at once.
process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
// Ctrl-C reaches the whole process group; the supervisor turns it into an orderly SIGTERM.
process.on('SIGINT', () => undefined);

const log = createLogger('agent');
const faultMs = (name: string) => Number(process.env[name] ?? 0) || undefined;

try {
  const config = parseWith(
    AgentConfig,
    JSON.parse(process.env[AGENT_CONFIG_ENV] ?? 'null'),
    'agent configuration',
  );
  const agent = await startAgent({
    config,
    connection: loadConnectionConfig(process.env),
    bootId: await currentBootId(),
    log: log.child({ node: config.nodeId }),
    faults: {
      stepDelayMs: faultMs('SLOTFLOW_FAULT_STEP_DELAY_MS'),
      chunkDelayMs: faultMs('SLOTFLOW_FAULT_CHUNK_DELAY_MS'),
    },
  });
  process.once('SIGTERM', () => {
    void agent.stop().finally(() => process.exit(0));
  });
} catch (err) {
  log.fatal({ err: describeError(err) }, 'agent cannot start');
  const name = (err as Error).name;
  const config = err instanceof SyntaxError || name === 'SchemaError' || name === 'AgentConfigError';
  process.exit(config ? CONFIG_EXIT_CODE : 1);
}
