import { readFile } from 'node:fs/promises';
import {
  connect,
  credsAuthenticator,
  type NatsConnection,
  type ConnectionOptions,
} from '@nats-io/transport-node';
import type { ConnectionConfig } from '../schema/index.ts';

/** NATS could not be reached or refused the credentials. */
export class NatsUnavailableError extends Error {
  override name = 'NatsUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Builds nats.js options from slotflow's connection settings (credentials and TLS included). */
export async function natsOptions(
  config: ConnectionConfig['nats'],
  name: string,
): Promise<ConnectionOptions> {
  const opts: ConnectionOptions = { servers: config.servers, name, maxReconnectAttempts: -1 };
  if (config.credsFile) opts.authenticator = credsAuthenticator(await readFile(config.credsFile));
  if (config.user) opts.user = config.user;
  if (config.password) opts.pass = config.password;
  if (config.token) opts.token = config.token;
  if (config.tls) {
    opts.tls = {
      ...(config.tls.ca ? { caFile: config.tls.ca } : {}),
      ...(config.tls.cert ? { certFile: config.tls.cert } : {}),
      ...(config.tls.key ? { keyFile: config.tls.key } : {}),
    };
  }
  return opts;
}

/** Connects to NATS, with an error that says what to do when it cannot. */
export async function connectNats(
  config: ConnectionConfig['nats'],
  name: string,
  extra: Partial<ConnectionOptions> = {},
): Promise<NatsConnection> {
  const opts = { ...(await natsOptions(config, name)), timeout: 5000, ...extra };
  try {
    return await connect(opts);
  } catch (err) {
    throw new NatsUnavailableError(
      `cannot reach NATS at ${config.servers.join(',')} (${(err as Error).message}) — run 'slotflow stack up' or set NATS_URL`,
      { cause: err },
    );
  }
}
