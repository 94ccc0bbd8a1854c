// Public surface of the node agent: configuration loading and the process entry point.
import type { Logger } from 'pino';
import type { AgentConfig, ConnectionConfig } from '../schema/index.ts';
import { startAgent } from './agent.ts';
import { currentBootId } from './boot-id.ts';
import { runSupervisor } from './supervisor.ts';

export { AGENT_VERSION, startAgent, type AgentOptions, type RunningAgent } from './agent.ts';
export {
  AGENT_ENV,
  AgentConfigError,
  assertWorkableDrivers,
  driverPairProblem,
  loadAgentConfig,
  type AgentFlags,
} from './config.ts';
export { runSupervisor } from './supervisor.ts';

/**
 * Runs the agent until SIGTERM/SIGINT and returns the exit code. With `simulate` reboots the
 * process becomes the supervisor of a simulated machine; with `command` reboots the agent runs
 * in this process and the real machine reboots.
 */
export async function runAgent(
  config: AgentConfig,
  connection: ConnectionConfig,
  log: Logger,
): Promise<number> {
  if (config.reboot === 'simulate') return runSupervisor(config, log);
  const agent = await startAgent({ config, connection, bootId: await currentBootId(), log });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await agent.stop();
  return 0;
}
