import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { meshKeyPath } from '../p2p/mesh-key-path.ts';
import { AgentConfig, SchemaError, parseWith, type AgentConfigInput } from '../schema/index.ts';

/** Environment variables the agent reads (flags win over them, they win over the file). */
export const AGENT_ENV = {
  config: 'SLOTFLOW_AGENT_CONFIG',
  nodeId: 'SLOTFLOW_NODE_ID',
  dataDir: 'SLOTFLOW_DATA_DIR',
  labels: 'SLOTFLOW_LABELS',
  slotDriver: 'SLOTFLOW_SLOT_DRIVER',
  reboot: 'SLOTFLOW_REBOOT',
  trustedKeysDir: 'SLOTFLOW_TRUSTED_KEYS',
  metricsListen: 'SLOTFLOW_METRICS_LISTEN',
  initialVersion: 'SLOTFLOW_INITIAL_VERSION',
  heartbeatInterval: 'SLOTFLOW_HEARTBEAT_INTERVAL',
  maxCommandLifetime: 'SLOTFLOW_MAX_COMMAND_LIFETIME',
  p2pListen: 'SLOTFLOW_P2P_LISTEN',
  bootstrap: 'SLOTFLOW_BOOTSTRAP',
  meshKey: 'SLOTFLOW_MESH_KEY',
  eventLedger: 'SLOTFLOW_EVENT_LEDGER',
  /** Test-only: `1` marks a lab machine whose harness plays the bootloader (AgentConfig.lab). */
  lab: 'SLOTFLOW_LAB',
} as const;

const REQUIRED_HINT = {
  nodeId: `--node-id, ${AGENT_ENV.nodeId} or nodeId in the --config file`,
  dataDir: `--data-dir, ${AGENT_ENV.dataDir} or dataDir in the --config file`,
} as const;

/** `slotflow agent` flags, as parsed (all optional; the schema says what is required). */
export interface AgentFlags {
  readonly config?: string | undefined;
  readonly nodeId?: string | undefined;
  readonly dataDir?: string | undefined;
  readonly labels?: string | undefined;
  readonly slotDriver?: string | undefined;
  readonly reboot?: string | undefined;
  readonly rebootCommand?: string | undefined;
  readonly p2pListen?: string | undefined;
  readonly bootstrap?: string | undefined;
  readonly meshKey?: string | undefined;
  readonly trustedKeys?: string | undefined;
  readonly healthCheck?: readonly string[] | undefined;
  readonly metricsListen?: string | undefined;
  readonly initialVersion?: string | undefined;
  readonly heartbeatInterval?: string | undefined;
  readonly maxCommandLifetime?: string | undefined;
  readonly artifactDir?: readonly string[] | undefined;
  readonly artifactUrl?: readonly string[] | undefined;
}

/** The configuration file could not be read or parsed, or it names drivers that cannot work together. */
export class AgentConfigError extends Error {
  override name = 'AgentConfigError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Why the configured slot driver and reboot driver cannot work together on a real machine;
 * undefined when they can. Each answer says what was configured, why it fails and what to change.
 */
export function driverPairProblem(
  config: Pick<AgentConfig, 'slotDriver' | 'reboot' | 'rebootCommand' | 'dataDir' | 'grub'>,
): string | undefined {
  const configured = `slotDriver '${config.slotDriver}' with reboot '${config.reboot}'`;
  if (config.slotDriver === 'file' && config.reboot === 'command') {
    return (
      `${configured} cannot work: the file driver's slots are image files in ${join(config.dataDir, 'slots')} ` +
      `that only the simulated machine's firmware boots, so a real reboot ('${config.rebootCommand.join(' ')}') ` +
      `would restart this machine on the same system and every upgrade would fall back. ` +
      `Use --reboot simulate for a simulated node; on a real machine choose the slot driver for its disks ` +
      `(--slot-driver grub, rauc or kairos) and keep --reboot command.`
    );
  }
  if (config.slotDriver !== 'file' && config.reboot === 'simulate') {
    const bootloader = {
      grub: `GRUB never reads the environment block ${config.grub.envFile}`,
      rauc: "RAUC's bootloader never runs",
      kairos: "Kairos' GRUB never runs",
    }[config.slotDriver];
    return (
      `${configured} cannot work outside the lab: a simulated reboot only restarts the agent process; ` +
      `${bootloader}, so the armed trial slot never boots and every upgrade would end in a fallback. ` +
      `Use --reboot command (it runs rebootCommand, default 'systemctl reboot'). Only a test harness ` +
      `that plays the bootloader itself marks its node a lab machine (${AGENT_ENV.lab}=1).`
    );
  }
  return undefined;
}

/**
 * Refuses a slot driver and reboot driver that cannot work together, unless the node is a lab
 * machine (`lab`, SLOTFLOW_LAB=1) whose harness plays the missing part. Returns the problem a lab
 * machine is let off, for a warning.
 */
export function assertWorkableDrivers(
  config: Pick<AgentConfig, 'slotDriver' | 'reboot' | 'rebootCommand' | 'dataDir' | 'grub' | 'lab'>,
): string | undefined {
  const problem = driverPairProblem(config);
  if (problem !== undefined && !config.lab) throw new AgentConfigError(problem);
  return problem;
}

/** SLOTFLOW_LAB: `1` or `0` (empty counts as unset). */
function labFromEnv(value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === '1' || value === '0') return value === '1';
  throw new SchemaError('agent configuration', [
    `${AGENT_ENV.lab}: expected 1 (a lab machine, for test harnesses only) or 0, got ${JSON.stringify(value)}`,
  ]);
}

const list = (text: string | undefined) =>
  text
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** `name=argv…` from --health-check, split on whitespace (no shell). */
function healthCheckFlag(text: string): { name: string; command: string[] } | string {
  const eq = text.indexOf('=');
  const command = text
    .slice(eq + 1)
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  if (eq <= 0 || command.length === 0) return text;
  return { name: text.slice(0, eq).trim(), command };
}

async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new AgentConfigError(`cannot read the agent configuration ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let parsed: unknown;
  try {
    // Only a configuration file needs the YAML parser; an agent configured by flags never loads it.
    const { parse: parseYaml } = await import('yaml');
    parsed = parseYaml(text);
  } catch (err) {
    throw new AgentConfigError(`${file} is not YAML or JSON: ${(err as Error).message}`, { cause: err });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new AgentConfigError(`${file}: expected a mapping of settings such as nodeId: edge-1`);
  }
  return parsed as Record<string, unknown>;
}

/** Shows a value from the file for an error message, cut short. */
function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * The file's fields that flags and environment are merged into must have the shape merging
 * needs (a list, a mapping); otherwise merging would throw a bare TypeError, or quietly drop or
 * scramble them, before the schema could name the field.
 */
function assertMergeable(fromFile: Record<string, unknown>, file: string): void {
  const problems: string[] = [];
  const sources = fromFile['artifactSources'];
  if (sources !== undefined && !Array.isArray(sources)) {
    problems.push(
      `artifactSources: expected a list of sources, e.g. [{ type: nats }, { type: http, url: https://mirror/images }], got ${shown(sources)}`,
    );
  }
  const p2p = fromFile['p2p'];
  if (p2p !== undefined && (p2p === null || typeof p2p !== 'object' || Array.isArray(p2p))) {
    problems.push(
      `p2p: expected a mapping of peer-to-peer settings, e.g. listen: [/ip4/0.0.0.0/tcp/4001], got ${shown(p2p)}`,
    );
  }
  if (problems.length > 0) throw new SchemaError(`agent configuration in ${file}`, problems);
}

/**
 * The agent's configuration from an optional file (YAML or JSON, the AgentConfig fields), the
 * environment and the flags, later ones winning field by field; validated by AgentConfig and
 * refused when its slot and reboot drivers cannot work together. The trusted keys default to
 * `<home>/keys`, where `slotflow keys init` puts the public key, and the mesh key to
 * `<home>/keys/mesh.psk`.
 */
export async function loadAgentConfig(input: {
  flags: AgentFlags;
  env: NodeJS.ProcessEnv;
  home: string;
}): Promise<AgentConfig> {
  const { flags, env } = input;
  const file = flags.config ?? env[AGENT_ENV.config];
  const fromFile = file ? await readConfigFile(file) : {};
  if (file) assertMergeable(fromFile, file);
  const fromEnv = defined({
    nodeId: env[AGENT_ENV.nodeId],
    dataDir: env[AGENT_ENV.dataDir],
    labels: env[AGENT_ENV.labels],
    slotDriver: env[AGENT_ENV.slotDriver],
    reboot: env[AGENT_ENV.reboot],
    trustedKeysDir: env[AGENT_ENV.trustedKeysDir],
    metricsListen: env[AGENT_ENV.metricsListen],
    initialVersion: env[AGENT_ENV.initialVersion],
    heartbeatInterval: env[AGENT_ENV.heartbeatInterval],
    maxCommandLifetime: env[AGENT_ENV.maxCommandLifetime],
    eventLedger: env[AGENT_ENV.eventLedger] || undefined,
    lab: labFromEnv(env[AGENT_ENV.lab]),
  });
  const checks = flags.healthCheck?.map(healthCheckFlag);
  const badCheck = checks?.find((c) => typeof c === 'string');
  if (badCheck !== undefined) {
    throw new SchemaError('agent configuration', [
      `--health-check: expected name=command args, e.g. api-up=curl -fsS http://127.0.0.1/healthz, got ${JSON.stringify(badCheck)}`,
    ]);
  }
  const sources = [
    ...(flags.artifactDir ?? []).map((path) => ({ type: 'dir', path })),
    ...(flags.artifactUrl ?? []).map((url) => ({ type: 'http', url })),
  ];
  const fromFlags = defined({
    nodeId: flags.nodeId,
    dataDir: flags.dataDir,
    labels: flags.labels,
    slotDriver: flags.slotDriver,
    reboot: flags.reboot,
    rebootCommand: flags.rebootCommand?.split(/\s+/).filter(Boolean),
    trustedKeysDir: flags.trustedKeys,
    metricsListen: flags.metricsListen,
    initialVersion: flags.initialVersion,
    heartbeatInterval: flags.heartbeatInterval,
    maxCommandLifetime: flags.maxCommandLifetime,
    healthChecks: checks,
    // Extra sources come after NATS (or the file's list): the control plane stays the first choice.
    artifactSources:
      sources.length > 0
        ? [...((fromFile['artifactSources'] as unknown[]) ?? [{ type: 'nats' }]), ...sources]
        : undefined,
  });
  const p2p = {
    ...((fromFile['p2p'] as object | undefined) ?? {}),
    ...defined({
      listen: list(env[AGENT_ENV.p2pListen]),
      bootstrap: list(env[AGENT_ENV.bootstrap]),
      meshKey: env[AGENT_ENV.meshKey] || undefined,
    }),
    ...defined({ listen: list(flags.p2pListen), bootstrap: list(flags.bootstrap), meshKey: flags.meshKey }),
  } as Record<string, unknown>;
  // Where `slotflow keys mesh-init` puts it, beside the control plane's keys.
  if (p2p['openMesh'] !== true) p2p['meshKey'] ??= meshKeyPath(input.home);
  const merged = { ...fromFile, ...fromEnv, ...fromFlags, p2p } as AgentConfigInput;
  merged.trustedKeysDir ??= join(input.home, 'keys');
  const missing = (['nodeId', 'dataDir'] as const)
    .filter((field) => merged[field] === undefined)
    .map((field) => `${field}: required; give ${REQUIRED_HINT[field]}`);
  if (missing.length > 0) throw new SchemaError('agent configuration', missing);
  const config = parseWith(AgentConfig, merged, 'agent configuration');
  assertWorkableDrivers(config);
  return config;
}

/** Whether the configuration turns the peer-to-peer fallback on. */
export function p2pEnabled(config: AgentConfig): boolean {
  return config.p2p.listen.length > 0 || config.p2p.relay.reserve;
}
