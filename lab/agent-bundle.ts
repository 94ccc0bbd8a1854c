import { cp, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { cachedDir, cacheKey, fileDigest, labCacheRoot } from './cache.ts';
import { copyBinary } from './elf.ts';
import { LabBuildError } from './errors.ts';

const REPO = new URL('..', import.meta.url).pathname;

/**
 * Packages the slot's CLI never loads: the Temporal SDK (its native core and bundler serve the
 * control plane only), so the bundle leaves their imports as they are.
 */
export const NOT_BUNDLED = ['@temporalio/*', 'esbuild'];

/** Where slotflow and Node.js live in a lab slot. */
export const GUEST_SLOTFLOW_DIR = '/opt/slotflow';
export const GUEST_NODE = '/usr/local/bin/node';
/**
 * The Node flags the agent runs with, in a slot (guest/agent.sh) as from a clone (bin/slotflow):
 * a 1 MiB young generation, since V8's default grows to tens of MiB an agent only holds resident.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
/** The CLI's entry point in a slot: `node /opt/slotflow/dist/main.js agent …`. */
export const GUEST_CLI = `${GUEST_SLOTFLOW_DIR}/dist/main.js`;

/** The agent bundle for a lab slot: a cache key over its inputs and the step that adds it to a rootfs. */
export interface AgentBundle {
  readonly key: string;
  add(root: string): Promise<void>;
}

// ES modules bundled from CommonJS packages call require(); this gives them Node's.
const REQUIRE_SHIM =
  "import { createRequire as __slotflowCreateRequire } from 'node:module'; const require = __slotflowCreateRequire(import.meta.url);";

/**
 * Node.js (this process's binary and its libraries) and slotflow's CLI, bundled into a few ES
 * module files with every npm dependency it runs with, laid out under /usr/local/bin and
 * /opt/slotflow/dist of a slot's rootfs. A device image carries the agent the same way: one
 * bundle loads in a fraction of the time thousands of module files take, which matters most on
 * slow machines. The bundle is built at once (a second or two) and keys the cache by its bytes.
 */
export async function agentBundle(
  node = process.execPath,
  repo = REPO,
  cacheRoot = labCacheRoot(),
): Promise<AgentBundle> {
  const staging = await mkdtemp(join(tmpdir(), 'slotflow-agent-bundle-'));
  let key: string;
  let dist: string;
  try {
    await bundleCli(repo, join(staging, 'dist'));
    key = cacheKey([
      'agent/2',
      await fileDigest(node),
      await fileDigest(join(repo, 'package.json')),
      await treeDigest(join(staging, 'dist')),
    ]);
    // Kept by content in the lab cache, so the bundle outlives this process like the disks it goes into.
    ({ dir: dist } = await cachedDir(cacheRoot, 'agent-bundle', key, (out) =>
      cp(join(staging, 'dist'), out, { recursive: true }),
    ));
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return {
    key,
    async add(root) {
      await copyBinary(root, node, GUEST_NODE);
      const app = join(root, GUEST_SLOTFLOW_DIR);
      await mkdir(app, { recursive: true });
      // The agent reads its version from the package.json next to its modules' folder.
      await cp(join(repo, 'package.json'), join(app, 'package.json'));
      await cp(dist, join(app, 'dist'), { recursive: true, filter: (src) => !src.endsWith('/.complete') });
    },
  };
}

/** Bundles cli/main.ts (and the modules it loads on demand, as chunks) into `outdir`. */
export async function bundleCli(repo: string, outdir: string): Promise<void> {
  await build({
    entryPoints: [join(repo, 'cli/main.ts')],
    outdir,
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    external: NOT_BUNDLED,
    banner: { js: REQUIRE_SHIM },
    logLevel: 'silent',
    legalComments: 'none',
  }).catch((err: unknown) => {
    throw new LabBuildError(`bundling the agent for the slot failed: ${(err as Error).message}`);
  });
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
