import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Runner } from '../../runtime/runner.ts';
import {
  BuildError,
  type BuildInput,
  type BuildOutput,
  type BuilderDeps,
  type ImageBuilder,
} from './builder.ts';
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

async function must(runner: Runner, file: string, args: string[]): Promise<string> {
  const result = await runner.run(file, args, { timeoutMs: 1_800_000 });
  if (!result.ok) throw new BuildError(`${file} ${args[0]} failed: ${result.failure}`);
  return result.stdout.trim();
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
      await must(
        runner,
        engine,
        engine === 'buildah'
          ? ['bud', '--layers=false', '-f', input.source, '-t', tag, dirname(input.source)]
          : ['build', '-f', input.source, '-t', tag, dirname(input.source)],
      );
      const work = await mkdtemp(join(tmpdir(), 'slotflow-ctr-'));
      const rootfs = join(work, 'rootfs');
      await mkdir(rootfs);
      try {
        if (engine === 'buildah') {
          const ctr = await must(runner, 'buildah', ['from', tag]);
          try {
            const mount = await must(runner, 'buildah', ['mount', ctr]);
            await must(runner, 'cp', ['-a', `${mount}/.`, rootfs]);
          } finally {
            await runner.run('buildah', ['rm', ctr], { timeoutMs: 60_000 });
          }
        } else {
          const ctr = await must(runner, engine, ['create', tag, '/bin/true']);
          try {
            const tar = join(work, 'rootfs.tar');
            await must(runner, engine, ['export', '-o', tar, ctr]);
            await must(runner, 'tar', ['-xf', tar, '-C', rootfs, '--numeric-owner']);
          } finally {
            await runner.run(engine, ['rm', ctr], { timeoutMs: 60_000 });
          }
        }
        const pack = input.format === 'squashfs' ? createSquashfsBuilder(deps) : createExt4Builder(deps);
        const out = await pack.build({ ...input, source: rootfs });
        return { ...out, builder: `${engine}+${out.builder}` };
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },
  };
}
