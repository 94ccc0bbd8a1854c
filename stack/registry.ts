import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServerSpec } from './server-process.ts';

/** Debian's package of the CNCF distribution registry installs it here. */
export const REGISTRY_BINARY = '/usr/bin/docker-registry';

/** Where an OCI registry (the CNCF distribution registry) listens and keeps its blobs. */
export interface RegistryOptions {
  readonly binary: string;
  readonly host: string;
  readonly port: number;
  /** Blobs and manifests live under `<dataDir>/storage`; the config file is `<dataDir>/config.yml`. */
  readonly dataDir: string;
  readonly logFile: string;
  /** How an operator moves the port elsewhere, for error messages. */
  readonly portFlag?: string;
  readonly startTimeoutMs?: number;
}

/** `host:port`, the form SLOTFLOW_REGISTRY and image references take. */
export function registryAddress(o: Pick<RegistryOptions, 'host' | 'port'>): string {
  return `${o.host}:${o.port}`;
}

/** The registry's config: filesystem storage, plain HTTP on one address, deletes allowed, no auth. */
export function registryConfig(o: RegistryOptions): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(join(o.dataDir, 'storage'))}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${JSON.stringify(registryAddress(o))}`,
    '',
  ].join('\n');
}

/** Resolves when `GET /v2/` answers 200 (the registry serves the distribution API). */
export async function probeRegistry(address: string, timeoutMs = 2_000): Promise<void> {
  const url = `http://${address}/v2/`;
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  await response.body?.cancel();
  if (response.status !== 200) throw new Error(`${url} answered HTTP ${response.status}`);
}

/** Writes the config file (a few lines, so synchronously) and returns the ServerSpec of `docker-registry serve CONFIG`. */
export function registryServerSpec(o: RegistryOptions): ServerSpec {
  mkdirSync(join(o.dataDir, 'storage'), { recursive: true });
  const config = join(o.dataDir, 'config.yml');
  writeFileSync(config, registryConfig(o));
  return {
    name: 'OCI registry',
    binary: o.binary,
    args: ['serve', config],
    logFile: o.logFile,
    ports: [
      { host: o.host, port: o.port, role: 'OCI registry port', change: o.portFlag ?? '--registry-port' },
    ],
    startTimeoutMs: o.startTimeoutMs ?? 20_000,
    probe: () => probeRegistry(registryAddress(o)),
  };
}
