import { readFile } from 'node:fs/promises';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import type { ConnectionConfig } from '../schema/index.ts';

/** Temporal could not be reached. */
export class TemporalUnavailableError extends Error {
  override name = 'TemporalUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Builds Temporal connection options (TLS and API key included) from slotflow's settings. */
export async function temporalConnectionOptions(
  config: ConnectionConfig['temporal'],
): Promise<ConnectionOptions> {
  const opts: ConnectionOptions = { address: config.address, connectTimeout: '5s' };
  if (config.tls) {
    opts.tls = {
      ...(config.tls.serverName ? { serverNameOverride: config.tls.serverName } : {}),
      ...(config.tls.ca ? { serverRootCACertificate: await readFile(config.tls.ca) } : {}),
      ...(config.tls.cert && config.tls.key
        ? { clientCertPair: { crt: await readFile(config.tls.cert), key: await readFile(config.tls.key) } }
        : {}),
    };
  }
  if (config.apiKey) {
    opts.apiKey = config.apiKey;
    opts.tls ??= true;
  }
  return opts;
}

/** Connects a Temporal client, with an error that says what to do when it cannot. */
export async function connectTemporal(config: ConnectionConfig['temporal']): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect(await temporalConnectionOptions(config));
  } catch (err) {
    throw new TemporalUnavailableError(
      `cannot reach Temporal at ${config.address} (${(err as Error).message}) — run 'slotflow stack up' or set TEMPORAL_ADDRESS`,
      { cause: err },
    );
  }
  return new Client({ connection, namespace: config.namespace });
}
