import { resolve } from 'node:path';
import {
  createLogger,
  defaultStackDir,
  PortInUseError,
  ProvisionError,
  recordPath,
  ServerStartError,
  stackDown,
  stackEnv,
  StackStateError,
  stackStatus,
  stackUp,
  temporalAddress,
  temporalUiUrl,
  recordedNatsUrl,
  SecurityMaterialError,
  registryAddress,
  type StackEnv,
  type StackRecord,
} from '../../stack/index.ts';
import { parseFlags, parsePort, type Command } from '../command.ts';
import { OperationFailed } from '../usage-error.ts';

const dataDirFlag = { 'data-dir': { type: 'string' }, json: { type: 'boolean' } } as const;

function dataDirOf(value: string | undefined): string {
  return value ? resolve(value) : defaultStackDir();
}

function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

function exportLine(env: StackEnv): string {
  return `export ${Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')}`;
}

// The stack's own failures are operations that failed (exit 1), with their message as is.
async function operation<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const known = [ProvisionError, PortInUseError, ServerStartError, StackStateError, SecurityMaterialError];
    if (known.some((k) => err instanceof k))
      throw new OperationFailed((err as Error).message, { cause: err });
    throw err;
  }
}

function describe(record: StackRecord): Record<string, unknown> {
  const t = record.temporal;
  const n = record.nats;
  return {
    dataDir: record.dataDir,
    temporal: {
      address: temporalAddress(t),
      namespace: t.namespace,
      ui: temporalUiUrl(t),
      pid: t.pid,
      binary: t.binary,
      logFile: t.logFile,
    },
    nats: {
      url: recordedNatsUrl(n),
      pid: n.pid,
      binary: n.binary,
      logFile: n.logFile,
      ...(n.security
        ? {
            security: {
              ca: n.security.ca,
              cliCreds: n.security.cliCreds,
              workerCreds: n.security.workerCreds,
              authDir: n.security.authDir,
            },
          }
        : {}),
    },
    ...(record.registry
      ? {
          registry: {
            address: registryAddress(record.registry),
            pid: record.registry.pid,
            binary: record.registry.binary,
            dataDir: record.registry.dataDir,
            logFile: record.registry.logFile,
          },
        }
      : {}),
    env: stackEnv(record),
  };
}

const upUsage =
  'slotflow stack up [--data-dir DIR] [--temporal-port P] [--ui-port P] [--nats-port P] [--registry-port P] [--namespace NS] [--insecure-nats] [--json]';

export const stackUpCommand: Command = {
  path: ['stack', 'up'],
  usage: upUsage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      {
        ...dataDirFlag,
        'temporal-port': { type: 'string' },
        'ui-port': { type: 'string' },
        'nats-port': { type: 'string' },
        'registry-port': { type: 'string' },
        namespace: { type: 'string' },
        'insecure-nats': { type: 'boolean' },
      },
      upUsage,
    );
    const result = await operation(() =>
      stackUp({
        dataDir: dataDirOf(values['data-dir']),
        temporalPort: parsePort('temporal-port', values['temporal-port']),
        uiPort: parsePort('ui-port', values['ui-port']),
        natsPort: parsePort('nats-port', values['nats-port']),
        registryPort: parsePort('registry-port', values['registry-port']),
        namespace: values.namespace,
        insecureNats: values['insecure-nats'] === true,
      }),
    );
    const info = describe(result.record);
    if (values.json) {
      printJson({ alreadyUp: result.alreadyUp, started: result.started, ...info, notes: result.notes });
      return 0;
    }
    const r = result.record;
    const lines = [
      result.alreadyUp
        ? `stack already up (${r.dataDir})`
        : `stack up (${r.dataDir}); started ${result.started.join(' and ')}`,
      `temporal  ${temporalAddress(r.temporal)}  namespace ${r.temporal.namespace}  pid ${r.temporal.pid}  log ${r.temporal.logFile}`,
      `web ui    ${temporalUiUrl(r.temporal)}`,
      `nats      ${recordedNatsUrl(r.nats)}  pid ${r.nats.pid}  log ${r.nats.logFile}`,
      ...(r.nats.security
        ? [
            `          TLS (CA ${r.nats.security.ca}) and credentials: CLI ${r.nats.security.cliCreds}, worker ${r.nats.security.workerCreds}`,
          ]
        : ['          NOT SECURED: no TLS, no credentials (--insecure-nats)']),
      ...(r.registry
        ? [`registry  ${registryAddress(r.registry)}  pid ${r.registry.pid}  log ${r.registry.logFile}`]
        : []),
      ...result.notes.map((n) => `note: ${n}`),
      exportLine(stackEnv(r)),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  },
};

const statusUsage = 'slotflow stack status [--data-dir DIR] [--json]';

export const stackStatusCommand: Command = {
  path: ['stack', 'status'],
  usage: statusUsage,
  async run(argv) {
    const { values } = parseFlags(argv, dataDirFlag, statusUsage);
    const dataDir = dataDirOf(values['data-dir']);
    const result = await operation(() => stackStatus(dataDir));
    if (values.json) {
      printJson(result);
      return result.up && result.healthy ? 0 : 1;
    }
    if (!result.up) {
      throw new OperationFailed(
        `the stack is not up (no ${recordPath(dataDir)}); start it with 'slotflow stack up'`,
      );
    }
    const { temporal: t, nats: n } = result;
    const state = (healthy: boolean) => (healthy ? 'healthy  ' : 'UNHEALTHY');
    const lines = [
      `temporal  ${state(t.healthy)}  ${t.address}  namespace ${t.namespace}  ui ${t.ui}  pid ${t.pid}`,
      ...t.problems.map((p) => `          - ${p}`),
      `nats      ${state(n.healthy)}  ${n.url}  pid ${n.pid}`,
      ...n.problems.map((p) => `          - ${p}`),
      ...(result.registry
        ? [
            `registry  ${state(result.registry.healthy)}  ${result.registry.address}  pid ${result.registry.pid}`,
            ...result.registry.problems.map((p) => `          - ${p}`),
          ]
        : []),
      exportLine(result.env),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return result.healthy ? 0 : 1;
  },
};

const downUsage = 'slotflow stack down [--data-dir DIR] [--json]';

export const stackDownCommand: Command = {
  path: ['stack', 'down'],
  usage: downUsage,
  async run(argv) {
    const { values } = parseFlags(argv, dataDirFlag, downUsage);
    const result = await operation(() => stackDown(dataDirOf(values['data-dir']), createLogger('stack')));
    if (values.json) {
      printJson(result);
      return 0;
    }
    if (!result.wasUp) {
      process.stdout.write(`stack was not up (no ${recordPath(result.dataDir)}); nothing to stop\n`);
      return 0;
    }
    const lines = result.stopped.map((s) => `${s.name.padEnd(9)} pid ${s.pid}: ${s.outcome}`);
    lines.push(`stack down; data kept in ${result.dataDir}`);
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  },
};
