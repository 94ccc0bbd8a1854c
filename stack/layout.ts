import { join } from 'node:path';

/** Ports `slotflow stack up` uses unless told otherwise (NATS avoids a system NATS on 4222). */
export const stackDefaults = {
  host: '127.0.0.1',
  temporalPort: 7233,
  uiPort: 8233,
  natsPort: 4322,
  registryPort: 5322,
  namespace: 'default',
} as const;

/** Where the stack keeps each file inside its data directory. */
export function stackLayout(dataDir: string) {
  return {
    temporalDb: join(dataDir, 'temporal.sqlite'),
    temporalLog: join(dataDir, 'temporal.log'),
    natsStore: join(dataDir, 'jetstream'),
    natsLog: join(dataDir, 'nats.log'),
    /** Operator, accounts, TLS files and creds of the secured nats-server (nats-auth.ts). */
    natsAuth: join(dataDir, 'nats-auth'),
    registryDir: join(dataDir, 'registry'),
    registryLog: join(dataDir, 'registry.log'),
  };
}
