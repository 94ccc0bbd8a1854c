import { issueNodeCredentials, stackEnv, stackStatus, stackUp } from '../stack/index.ts';

/** The local stack a demo runs against: its client environment and the Temporal UI's address. */
export interface DemoStack {
  /** TEMPORAL_ADDRESS, NATS_URL, … plus SLOTFLOW_HOME and the log level. */
  readonly env: Record<string, string>;
  readonly ui: string;
  /** The worker's environment: the stack's, with the worker's own NATS credentials. */
  readonly workerEnv: Record<string, string>;
  /** A node's environment: the stack's, with NATS credentials issued for that node only. */
  nodeEnv(nodeId: string): Promise<Record<string, string>>;
}

/**
 * Starts the local stack in `stackDir` unless it already runs healthy (provisioning it on first
 * use) and returns what clients need to reach it.
 */
export async function ensureLocalStack(
  stackDir: string,
  home: string,
  say: (line: string) => void,
): Promise<DemoStack> {
  let status = await stackStatus(stackDir);
  if (!status.up || !status.healthy) {
    say(
      `starting the local stack in ${stackDir} (Temporal dev server, JetStream nats-server, OCI registry)…`,
    );
    await stackUp({ dataDir: stackDir });
    status = await stackStatus(stackDir);
  }
  if (!status.up || !status.healthy)
    throw new Error(`the local stack is not healthy: run 'slotflow stack status' to see why`);
  const record = await readRecordOrThrow(stackDir);
  const security = record.nats.security;
  const env: Record<string, string> = {
    ...stackEnv(record),
    SLOTFLOW_HOME: home,
    SLOTFLOW_LOG_LEVEL: 'info',
  };
  say(`stack: Temporal ${env['TEMPORAL_ADDRESS']} (UI ${status.temporal.ui}), NATS ${env['NATS_URL']}`);
  return {
    env,
    ui: status.temporal.ui,
    workerEnv: security ? { ...env, NATS_CREDS: security.workerCreds } : env,
    nodeEnv: async (nodeId) =>
      security ? { ...env, NATS_CREDS: await issueNodeCredentials(security.authDir, nodeId) } : env,
  };
}

async function readRecordOrThrow(stackDir: string) {
  const { readRecord } = await import('../stack/state.ts');
  const record = await readRecord(stackDir);
  if (!record) throw new Error(`no stack record in ${stackDir}`);
  return record;
}
