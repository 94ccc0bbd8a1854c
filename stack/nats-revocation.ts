import { readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureNatsAuth, natsAuthPaths, readRevocations, writeServerConfig } from './nats-auth.ts';
import { isRunningBinary, signal } from './pids.ts';
import { readRecord } from './state.ts';
import { tlsPaths } from './tls.ts';

/** What revoking a node's NATS access changed. */
export interface NatsRevocation {
  readonly nodeId: string;
  /** The node's user keys now revoked (every credential it was ever issued). */
  readonly userKeys: string[];
  /** The server configuration rewritten with the revocations; a running server must reload it. */
  readonly configFile: string;
}

/**
 * Revokes every NATS credential ever issued to `nodeId`: their user keys go into the SLOTFLOW
 * account JWT's revocation list and the server configuration is rewritten. A running
 * nats-server applies it on a configuration reload (`reloadStackNats`), which drops the node's
 * open connections and refuses its credentials from then on. Credentials issued to the node
 * afterwards (re-enrolment) use a new key and are not affected.
 */
export async function revokeNodeCredentials(dir: string, nodeId: string): Promise<NatsRevocation> {
  const paths = natsAuthPaths(dir);
  const userKeys = await readdir(join(paths.issuedDir, nodeId)).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  const now = Math.floor(Date.now() / 1000);
  const revocations = { ...(await readRevocations(dir)) };
  for (const key of userKeys) revocations[key] = now;
  const temp = `${paths.revocations}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(revocations, null, 2) + '\n', { mode: 0o600 });
  await rename(temp, paths.revocations);
  const tls = tlsPaths(paths.tlsDir);
  const configFile = await writeServerConfig(await ensureNatsAuth(dir), tls);
  return { nodeId, userKeys, configFile };
}

/**
 * Asks the local stack's nats-server to reload its configuration (SIGHUP), so revocations take
 * effect without a restart. Returns false when no secured nats-server of that stack runs.
 */
export async function reloadStackNats(stackDir: string): Promise<boolean> {
  const record = await readRecord(stackDir);
  const nats = record?.nats;
  if (!nats?.security || !(await isRunningBinary(nats.pid, nats.binary))) return false;
  return signal(nats.pid, 'SIGHUP');
}
