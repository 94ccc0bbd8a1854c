// Reads a compose file into a small normalised model, so the checks in compose.test.ts see one
// shape whichever of the compose spec's long or short syntaxes the file uses.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

/** The condition a `depends_on` entry waits for. */
export type DependsOnCondition = string;

/** One published or exposed port of a service. */
export interface PortBinding {
  /** Port inside the container. */
  readonly target: number;
  /** Host port, when published. */
  readonly published?: number;
  readonly hostIp: string;
  readonly protocol: string;
  /** The entry as written, for messages. */
  readonly raw: string;
}

/** One entry of a service's `volumes`. */
export interface Mount {
  readonly type: 'volume' | 'bind' | 'tmpfs' | 'anonymous';
  /** Volume name or host path; absent for anonymous volumes and tmpfs. */
  readonly source?: string;
  readonly target: string;
  readonly readOnly: boolean;
}

/** A compose service, normalised. */
export interface Service {
  readonly name: string;
  readonly image?: string;
  readonly build?: { readonly context: string; readonly dockerfile: string };
  /** Exec-form command, or a string when the file used the shell-string form. */
  readonly command?: readonly string[] | string;
  readonly entrypoint?: readonly string[] | string;
  readonly environment: Readonly<Record<string, string | undefined>>;
  readonly dependsOn: ReadonlyMap<string, DependsOnCondition>;
  readonly ports: readonly PortBinding[];
  readonly volumes: readonly Mount[];
  readonly healthcheck?: { readonly test?: unknown; readonly disable?: boolean };
  readonly restart?: string;
}

/** The whole file, normalised; `raw` keeps the parsed document for top-level checks. */
export interface ComposeFile {
  readonly raw: Record<string, unknown>;
  readonly services: ReadonlyMap<string, Service>;
  /** Names declared under the top-level `volumes:`. */
  readonly declaredVolumes: ReadonlySet<string>;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function scalar(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new Error(`expected a scalar, got ${JSON.stringify(v)}`);
}

function stringList(v: unknown, what: string): readonly string[] | string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map((x) => scalar(x) ?? '');
  throw new Error(`${what}: expected a string or a list, got ${JSON.stringify(v)}`);
}

function environment(v: unknown, where: string): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  if (v === undefined || v === null) return env;
  if (Array.isArray(v)) {
    for (const item of v) {
      const text = scalar(item) ?? '';
      const eq = text.indexOf('=');
      if (eq < 0) env[text] = undefined;
      else env[text.slice(0, eq)] = text.slice(eq + 1);
    }
    return env;
  }
  if (!isObj(v)) throw new Error(`${where}.environment: expected a map or a list`);
  for (const [k, val] of Object.entries(v)) env[k] = scalar(val);
  return env;
}

function dependsOn(v: unknown, where: string): Map<string, DependsOnCondition> {
  const deps = new Map<string, DependsOnCondition>();
  if (v === undefined || v === null) return deps;
  if (Array.isArray(v)) {
    for (const name of v) deps.set(scalar(name) ?? '', 'service_started');
    return deps;
  }
  if (!isObj(v)) throw new Error(`${where}.depends_on: expected a list or a map`);
  for (const [name, spec] of Object.entries(v)) {
    const condition = isObj(spec) ? scalar(spec['condition']) : undefined;
    deps.set(name, condition ?? 'service_started');
  }
  return deps;
}

/** Parses one short-syntax port: `[[ip:]host:]container[/proto]`; ranges are expanded. */
export function parseShortPort(raw: string): PortBinding[] {
  const [spec = '', protocol = 'tcp'] = raw.split('/');
  const parts = spec.split(':');
  const container = parts.pop() ?? '';
  const host = parts.length > 0 ? parts.pop() : undefined;
  const hostIp = parts.length > 0 ? parts.join(':') : '0.0.0.0';
  const range = (text: string): number[] => {
    const [from, to = from] = text.split('-').map((n) => Number(n));
    if (!Number.isInteger(from) || !Number.isInteger(to) || from === undefined || to === undefined) {
      throw new Error(`port '${raw}': '${text}' is not a port or a port range`);
    }
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  };
  const targets = range(container);
  const hosts = host === undefined || host === '' ? undefined : range(host);
  if (hosts && hosts.length !== targets.length && hosts.length !== 1) {
    throw new Error(`port '${raw}': host and container ranges differ in length`);
  }
  return targets.map((target, i) => ({
    target,
    published: hosts ? (hosts.length === 1 ? hosts[0] : hosts[i]) : undefined,
    hostIp,
    protocol,
    raw,
  }));
}

function ports(v: unknown, where: string): PortBinding[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Error(`${where}.ports: expected a list`);
  return v.flatMap((p): PortBinding[] => {
    if (isObj(p)) {
      const published = scalar(p['published']);
      return [
        {
          target: Number(p['target']),
          published: published === undefined ? undefined : Number(published),
          hostIp: scalar(p['host_ip']) ?? '0.0.0.0',
          protocol: scalar(p['protocol']) ?? 'tcp',
          raw: JSON.stringify(p),
        },
      ];
    }
    return parseShortPort(scalar(p) ?? '');
  });
}

function isHostPath(source: string): boolean {
  return source.startsWith('.') || source.startsWith('/') || source.startsWith('~');
}

function mounts(v: unknown, where: string): Mount[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Error(`${where}.volumes: expected a list`);
  return v.map((m): Mount => {
    if (isObj(m)) {
      const type = scalar(m['type']) ?? 'volume';
      const source = scalar(m['source']);
      const kind = type === 'volume' && source === undefined ? 'anonymous' : type;
      if (kind !== 'volume' && kind !== 'bind' && kind !== 'tmpfs' && kind !== 'anonymous') {
        throw new Error(`${where}.volumes: unsupported mount type '${type}'`);
      }
      return { type: kind, source, target: scalar(m['target']) ?? '', readOnly: m['read_only'] === true };
    }
    const parts = (scalar(m) ?? '').split(':');
    if (parts.length === 1) return { type: 'anonymous', target: parts[0] ?? '', readOnly: false };
    const [source = '', target = '', mode = ''] = parts;
    return {
      type: isHostPath(source) ? 'bind' : 'volume',
      source,
      target,
      readOnly: mode.split(',').includes('ro'),
    };
  });
}

function service(name: string, v: unknown): Service {
  const where = `services.${name}`;
  if (!isObj(v)) throw new Error(`${where}: expected a map`);
  if ('<<' in v) throw new Error(`${where}: an unresolved '<<' merge key; parse with merge keys on`);
  let build: Service['build'];
  if (typeof v['build'] === 'string') build = { context: v['build'], dockerfile: 'Dockerfile' };
  else if (isObj(v['build'])) {
    build = {
      context: scalar(v['build']['context']) ?? '.',
      dockerfile: scalar(v['build']['dockerfile']) ?? 'Dockerfile',
    };
  }
  const hc = v['healthcheck'];
  return {
    name,
    image: scalar(v['image']),
    build,
    command: stringList(v['command'], `${where}.command`),
    entrypoint: stringList(v['entrypoint'], `${where}.entrypoint`),
    environment: environment(v['environment'], where),
    dependsOn: dependsOn(v['depends_on'], where),
    ports: ports(v['ports'], where),
    volumes: mounts(v['volumes'], where),
    healthcheck: isObj(hc) ? { test: hc['test'], disable: hc['disable'] === true } : undefined,
    restart: scalar(v['restart']),
  };
}

/** Parses compose YAML text (anchors and `<<` merge keys resolved) into the model. */
export function parseCompose(text: string): ComposeFile {
  const raw: unknown = parse(text, { merge: true });
  if (!isObj(raw)) throw new Error('compose file: expected a map at the top level');
  if (!isObj(raw['services'])) throw new Error('compose file: expected a services map');
  const services = new Map<string, Service>();
  for (const [name, spec] of Object.entries(raw['services'])) services.set(name, service(name, spec));
  const volumes = raw['volumes'];
  const declaredVolumes = new Set(isObj(volumes) ? Object.keys(volumes) : []);
  return { raw, services, declaredVolumes };
}

/** Reads and parses a compose file. */
export function loadCompose(path: string): ComposeFile {
  return parseCompose(readFileSync(path, 'utf8'));
}
