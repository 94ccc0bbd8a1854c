import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Runner } from '../../runtime/runner.ts';
import {
  BuildError,
  runTool,
  type BuildInput,
  type BuildOutput,
  type BuilderDeps,
  type ImageBuilder,
} from './builder.ts';
import { isInsecureRegistry, parseOciReference } from './oci.ts';
import { createExt4Builder, createSquashfsBuilder } from './rootfs.ts';

const ENGINES = ['buildah', 'podman', 'docker'] as const;
type Engine = (typeof ENGINES)[number];

/** The first container engine that can build here (`info` answers: a client without its daemon does not), or undefined. */
export async function findEngine(runner: Runner): Promise<Engine | undefined> {
  for (const engine of ENGINES) {
    const probe = await runner.run(engine, ['info'], { timeoutMs: 20_000 });
    if (probe.ok) return engine;
  }
  return undefined;
}

/** Registries the Containerfile's FROM lines name that are spoken to over plain HTTP (loopback ones). */
async function insecureBases(containerfile: string): Promise<string[]> {
  const text = await readFile(containerfile, 'utf8');
  const registries = new Set<string>();
  for (const m of text.matchAll(/^\s*FROM\s+(?:--\S+\s+)*(\S+)/gim)) {
    const image = m[1] as string;
    if (image === 'scratch' || !image.includes('/')) continue;
    try {
      const { registry } = parseOciReference(image);
      if (isInsecureRegistry(registry)) registries.add(registry);
    } catch {
      // Not a reference we understand (a build stage name, say): the engine judges it.
    }
  }
  return [...registries];
}

/** buildah's environment: a registries.conf marking the plain-HTTP base registries insecure, none other. */
async function buildahEnv(work: string, insecure: string[]): Promise<NodeJS.ProcessEnv | undefined> {
  if (insecure.length === 0) return undefined;
  const conf = join(work, 'registries.conf');
  await writeFile(
    conf,
    insecure.map((r) => `[[registry]]\nlocation = ${JSON.stringify(r)}\ninsecure = true\n`).join('\n'),
  );
  return { ...process.env, CONTAINERS_REGISTRIES_CONF: conf };
}

/** chroot isolation for RUN steps when no OCI runtime (runc, crun) is installed. */
async function isolationArgs(runner: Runner): Promise<string[]> {
  for (const runtime of ['crun', 'runc']) {
    if ((await runner.run(runtime, ['--version'], { timeoutMs: 10_000 })).ok) return [];
  }
  return ['--isolation', 'chroot'];
}

/**
 * Builds a Containerfile with buildah, podman or docker (whichever exists), exports the
 * container's filesystem and packs it like a rootfs, so the slot image is the container's tree.
 */
export function createContainerfileBuilder(deps: BuilderDeps): ImageBuilder {
  const { runner } = deps;
  return {
    name: 'containerfile',
    async build(input: BuildInput): Promise<BuildOutput> {
      try {
        if (!(await stat(input.source)).isFile()) throw new Error('not a file');
      } catch (err) {
        throw new BuildError(
          `Containerfile ${input.source} does not exist or is not a file; pass --containerfile with its path`,
          { cause: err },
        );
      }
      const engine = await findEngine(runner);
      if (!engine) {
        throw new BuildError(
          `no container engine found to build ${input.source}: tried ${ENGINES.join(', ')}; install one (e.g. apt-get install buildah) or build from a directory with --rootfs`,
        );
      }
      const tag = `localhost/slotflow-build:${input.version.replace(/[^A-Za-z0-9_.-]/g, '-')}`;
      const work = await mkdtemp(join(tmpdir(), 'slotflow-ctr-'));
      const rootfs = join(work, 'rootfs');
      await mkdir(rootfs);
      try {
        if (engine === 'buildah') {
          const env = await buildahEnv(work, await insecureBases(input.source));
          const isolation = await isolationArgs(runner);
          const bud = ['bud', '--layers=false', ...isolation, '-f', input.source, '-t', tag];
          await runTool(runner, engine, [...bud, dirname(input.source)], env);
        } else {
          await runTool(runner, engine, ['build', '-f', input.source, '-t', tag, dirname(input.source)]);
        }
        if (engine === 'buildah') {
          const ctr = await runTool(runner, 'buildah', ['from', tag]);
          try {
            const mount = await runTool(runner, 'buildah', ['mount', ctr]);
            await runTool(runner, 'cp', ['-a', `${mount}/.`, rootfs]);
          } finally {
            await runner.run('buildah', ['rm', ctr], { timeoutMs: 60_000 });
          }
        } else {
          const ctr = await runTool(runner, engine, ['create', tag, '/bin/true']);
          try {
            const tar = join(work, 'rootfs.tar');
            await runTool(runner, engine, ['export', '-o', tar, ctr]);
            await runTool(runner, 'tar', ['-xf', tar, '-C', rootfs, '--numeric-owner']);
          } finally {
            await runner.run(engine, ['rm', ctr], { timeoutMs: 60_000 });
          }
        }
        const pack = input.format === 'squashfs' ? createSquashfsBuilder(deps) : createExt4Builder(deps);
        const out = await pack.build({ ...input, source: rootfs });
        // buildah's storage is where `--push` reads from; other engines' images are not pushed.
        return {
          ...out,
          builder: `${engine}+${out.builder}`,
          ...(engine === 'buildah' ? { containerImage: tag } : {}),
        };
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },
  };
}
