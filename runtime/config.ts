import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConnectionConfig, ENV, SchemaError, connectionInputFromEnv, parseWith } from '../schema/index.ts';

/** Default SLOTFLOW_HOME: keys, stack state and local data. */
export function defaultHome(): string {
  return join(homedir(), '.slotflow');
}

/**
 * Connection settings from the environment, validated; flags given on the command line win.
 * A bad value names its variable, e.g. "NATS_URL: expected a NATS URL …".
 */
export function loadConnectionConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: { temporalAddress?: string; namespace?: string; natsUrl?: string } = {},
): ConnectionConfig {
  const input = connectionInputFromEnv(
    {
      ...env,
      ...(overrides.temporalAddress ? { [ENV.temporalAddress]: overrides.temporalAddress } : {}),
      ...(overrides.namespace ? { [ENV.temporalNamespace]: overrides.namespace } : {}),
      ...(overrides.natsUrl ? { [ENV.natsUrl]: overrides.natsUrl } : {}),
    },
    defaultHome(),
  );
  try {
    return parseWith(ConnectionConfig, input, 'connection settings');
  } catch (err) {
    if (!(err instanceof SchemaError)) throw err;
    throw new SchemaError('connection settings', err.problems.map(nameVariable), { cause: err });
  }
}

// Field paths of ConnectionConfig and the environment variables they come from.
const VARIABLE_OF: readonly [string, string][] = [
  ['temporal.address', ENV.temporalAddress],
  ['temporal.namespace', ENV.temporalNamespace],
  ['temporal.tls', 'TEMPORAL_TLS_CA/_CERT/_KEY'],
  ['temporal.apiKey', ENV.temporalApiKey],
  ['nats.servers', ENV.natsUrl],
  ['nats.credsFile', ENV.natsCreds],
  ['nats.user', ENV.natsUser],
  ['nats.password', ENV.natsPassword],
  ['nats.token', ENV.natsToken],
  ['nats.tls', 'NATS_TLS_CA/_CERT/_KEY'],
  ['home', ENV.home],
];

/** Rewrites `nats.servers[0]: …` as `NATS_URL: …` so the operator knows what to change. */
function nameVariable(problem: string): string {
  for (const [path, variable] of VARIABLE_OF) {
    if (problem.startsWith(path)) return `${variable}: ${problem.slice(problem.indexOf(':') + 2)}`;
  }
  return problem;
}
