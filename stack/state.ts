import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { StackStateError } from './errors.ts';

// stack.json is private to `slotflow stack` (written by `up`, read by `status` and `down`), so
// its schema lives here rather than in schema/. `version` lets a later format still read it.
const port = z.number().int().min(1).max(65535);

const temporalRecord = z.object({
  pid: z.number().int().positive(),
  binary: z.string().min(1),
  version: z.string(),
  host: z.string().min(1),
  port,
  uiPort: port,
  httpPort: port,
  metricsPort: port,
  namespace: z.string().min(1),
  dbFile: z.string().min(1),
  logFile: z.string().min(1),
  startedAt: z.iso.datetime(),
});

const natsRecord = z.object({
  pid: z.number().int().positive(),
  binary: z.string().min(1),
  version: z.string(),
  host: z.string().min(1),
  port,
  monitorPort: port,
  storeDir: z.string().min(1),
  logFile: z.string().min(1),
  startedAt: z.iso.datetime(),
  /** TLS and operator-mode auth; absent when the server was started without (`--insecure-nats`). */
  security: z
    .object({
      /** The operator, accounts, server configuration and creds files (nats-auth.ts). */
      authDir: z.string().min(1),
      configFile: z.string().min(1),
      /** The CA clients trust (NATS_TLS_CA). */
      ca: z.string().min(1),
      /** The operator CLI's creds (NATS_CREDS for clients of the stack). */
      cliCreds: z.string().min(1),
      /** The worker's creds. */
      workerCreds: z.string().min(1),
    })
    .optional(),
});

const registryRecord = z.object({
  pid: z.number().int().positive(),
  binary: z.string().min(1),
  host: z.string().min(1),
  port,
  dataDir: z.string().min(1),
  logFile: z.string().min(1),
  startedAt: z.iso.datetime(),
});

/** The on-disk record of a running local stack: what `up` started, so `down` stops only that. */
export const stackRecord = z.object({
  version: z.literal(1),
  dataDir: z.string().min(1),
  temporal: temporalRecord,
  nats: natsRecord,
  /** Absent in records written before the stack ran a registry, or when its binary is missing. */
  registry: registryRecord.optional(),
});
export type StackRecord = z.infer<typeof stackRecord>;
export type TemporalRecord = z.infer<typeof temporalRecord>;
export type NatsRecord = z.infer<typeof natsRecord>;
export type RegistryRecord = z.infer<typeof registryRecord>;

/** `<dataDir>/stack.json`. */
export function recordPath(dataDir: string): string {
  return join(dataDir, 'stack.json');
}

/** Reads and validates the stack record; undefined when there is none. */
export async function readRecord(dataDir: string): Promise<StackRecord | undefined> {
  const path = recordPath(dataDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StackStateError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new StackStateError(
      `${path} is not JSON (${(err as Error).message}); stop the servers it names by hand and delete it`,
      { cause: err },
    );
  }
  const parsed = stackRecord.safeParse(json);
  if (!parsed.success) {
    throw new StackStateError(
      `${path} does not look like a slotflow stack record: ${z.prettifyError(parsed.error)}; ` +
        'stop the servers it names by hand and delete it',
      { cause: parsed.error },
    );
  }
  return parsed.data;
}

/** Writes the record atomically (temp file + rename), so a reader never sees half of it. */
export async function writeRecord(record: StackRecord): Promise<void> {
  await mkdir(record.dataDir, { recursive: true });
  const path = recordPath(record.dataDir);
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(stackRecord.parse(record), null, 2) + '\n');
  await rename(temp, path);
}

/** Deletes the record (no error when it is already gone). */
export async function removeRecord(dataDir: string): Promise<void> {
  await rm(recordPath(dataDir), { force: true });
}
