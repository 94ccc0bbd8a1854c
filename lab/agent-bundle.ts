import { cp, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { cacheKey, fileDigest } from './cache.ts';
import { copyBinary } from './elf.ts';
import { LabBuildError } from './errors.ts';

const REPO = new URL('..', import.meta.url).pathname;

/** The project folders `slotflow agent` loads (checked by tracing a run), copied into the slot. */
export const AGENT_SOURCE_DIRS = [
  'bin',
  'cli',
  'node-agent',
  'schema',
  'signing',
  'runtime',
  'eventlog',
  'p2p',
];

/**
 * The npm dependencies the agent does not use: the Temporal SDK (with its bundler and native
 * core) and the table and progress printers of the operator CLI. Everything else in
 * package.json's dependencies, with its own dependencies, goes into the slot.
 */
export const NOT_FOR_AGENT = [/^@temporalio\//, /^cli-table3$/, /^log-update$/];

/** Where slotflow and Node.js live in a lab slot. */
export const GUEST_SLOTFLOW_DIR = '/opt/slotflow';
export const GUEST_NODE = '/usr/local/bin/node';

// Files a running program never reads: source maps, type declarations, documentation.
const SKIP = /(\.map|\.d\.[cm]?ts|\.md|\.markdown|LICENSE[^/]*|CHANGELOG[^/]*)$/i;

interface LockEntry {
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly dev?: boolean;
}

/**
 * The package-lock paths (`node_modules/…`) of the agent's runtime dependencies: package.json's
 * dependencies minus NOT_FOR_AGENT, closed over each package's dependencies, resolved the way
 * Node resolves them (nested node_modules first, then each parent's).
 */
export async function agentPackages(repo = REPO): Promise<string[]> {
  const pkg = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const lock = JSON.parse(await readFile(join(repo, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const resolve = (from: string, name: string): string | undefined => {
    for (let base = from; ;) {
      const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
      if (lock.packages[candidate]) return candidate;
      if (!base) return undefined;
      const cut = base.lastIndexOf('/node_modules/');
      base = cut < 0 ? '' : base.slice(0, cut);
    }
  };
  const found = new Set<string>();
  const visit = (from: string, name: string, optional: boolean) => {
    const path = resolve(from, name);
    if (!path) {
      if (optional) return;
      throw new LabBuildError(
        `package-lock.json lists no ${name} (needed by ${from || 'slotflow'}); run npm install and try again`,
      );
    }
    if (found.has(path)) return;
    found.add(path);
    const entry = lock.packages[path]!;
    for (const dep of Object.keys(entry.dependencies ?? {})) visit(path, dep, false);
    for (const dep of Object.keys(entry.optionalDependencies ?? {})) visit(path, dep, true);
  };
  for (const name of Object.keys(pkg.dependencies)) {
    if (!NOT_FOR_AGENT.some((re) => re.test(name))) visit('', name, false);
  }
  return [...found].sort();
}

/** The agent bundle for a lab slot: a cache key over its inputs and the step that adds it to a rootfs. */
export interface AgentBundle {
  readonly key: string;
  add(root: string): Promise<void>;
}

/**
 * Node.js (this process's binary and its libraries) and slotflow's agent with its runtime npm
 * dependencies, laid out under /usr/local/bin and /opt/slotflow of a slot's rootfs.
 */
export async function agentBundle(node = process.execPath, repo = REPO): Promise<AgentBundle> {
  const packages = await agentPackages(repo);
  // Hashing the sources' content (not a commit id) keeps the cache honest for uncommitted edits.
  const sourceDigests: string[] = [];
  for (const dir of AGENT_SOURCE_DIRS) sourceDigests.push(`${dir}:${await treeDigest(join(repo, dir))}`);
  const key = cacheKey([
    'agent/1',
    await fileDigest(node),
    await fileDigest(join(repo, 'package-lock.json')),
    packages.join(','),
    ...sourceDigests,
  ]);
  return {
    key,
    async add(root) {
      await copyBinary(root, node, GUEST_NODE);
      const app = join(root, GUEST_SLOTFLOW_DIR);
      await mkdir(app, { recursive: true });
      await cp(join(repo, 'package.json'), join(app, 'package.json'));
      for (const dir of AGENT_SOURCE_DIRS) {
        await cp(join(repo, dir), join(app, dir), { recursive: true, filter: (src) => !SKIP.test(src) });
      }
      for (const path of packages) {
        const source = join(repo, path);
        try {
          await stat(source);
        } catch {
          continue; // an optional dependency for another platform
        }
        await mkdir(dirname(join(app, path)), { recursive: true });
        await cp(source, join(app, path), {
          recursive: true,
          dereference: false,
          // Nested node_modules are copied on their own when the closure reaches them.
          filter: (src) => !SKIP.test(src) && !src.slice(source.length).includes('/node_modules/'),
        });
      }
    },
  };
}

/** A digest over every file's path and content under a directory. */
async function treeDigest(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const entry of (await readdir(dir, { recursive: true, withFileTypes: true })).sort((a, b) =>
    join(a.parentPath, a.name).localeCompare(join(b.parentPath, b.name)),
  )) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    parts.push(`${path.slice(dir.length)}:${await fileDigest(path)}`);
  }
  return cacheKey(parts);
}
