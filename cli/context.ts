import type { NatsConnection } from '@nats-io/nats-core';
import type { Client } from '@temporalio/client';
import { loadConnectionConfig } from '../runtime/config.ts';
import { SchemaError, type ConnectionConfig } from '../schema/index.ts';
import { UsageError } from './usage-error.ts';

/** Connection settings for a CLI command; bad environment values are a usage error (exit 2). */
export function cliConfig(overrides: Parameters<typeof loadConnectionConfig>[1] = {}): ConnectionConfig {
  try {
    return loadConnectionConfig(process.env, overrides);
  } catch (err) {
    if (err instanceof SchemaError) throw new UsageError(err.message, { cause: err });
    throw err;
  }
}

/** Runs `fn` with a NATS connection and always drains it afterwards. */
export async function withNats<T>(
  config: ConnectionConfig,
  fn: (nc: NatsConnection) => Promise<T>,
): Promise<T> {
  // Client libraries load on first use, so `--help` and bad usage answer at once.
  const { connectNats } = await import('../runtime/nats.ts');
  const nc = await connectNats(config.nats, 'slotflow-cli', { maxReconnectAttempts: 2 });
  try {
    return await fn(nc);
  } finally {
    await nc.drain().catch(() => nc.close());
  }
}

/** Runs `fn` with a Temporal client and always closes its connection afterwards. */
export async function withTemporal<T>(
  config: ConnectionConfig,
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  const { connectTemporal } = await import('../runtime/temporal.ts');
  const client = await connectTemporal(config.temporal);
  try {
    return await fn(client);
  } finally {
    await client.connection.close();
  }
}

/** Writes one JSON document to stdout (the only thing `--json` prints). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
