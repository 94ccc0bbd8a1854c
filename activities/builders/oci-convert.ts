import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BuildError,
  type BuildInput,
  type BuildOutput,
  type BuilderDeps,
  type ImageBuilder,
} from './builder.ts';
import { formatOciReference, parseOciReference } from './oci.ts';
import { fetchManifest, imageManifestOf, pullToLayout } from './oci-registry.ts';
import { createExt4Builder, createSquashfsBuilder } from './rootfs.ts';

/**
 * Turns a digest-pinned OCI image into a slot image: checks the manifest against the pinned
 * digest, pulls it with skopeo and checks every blob, applies the layers in order with umoci
 * (whiteouts included) and packs the tree like a rootfs. The filesystem's UUID and hash seed
 * come from the layer digests, so the same layers give the same bytes whatever the version.
 */
export function createOciBuilder(deps: BuilderDeps): ImageBuilder {
  const { runner } = deps;
  return {
    name: 'oci',
    async build(input: BuildInput): Promise<BuildOutput> {
      const ref = parseOciReference(input.source);
      if (!ref.digest) {
        throw new BuildError(
          `OCI image ${input.source} is not pinned by digest; expected registry/repo@sha256:<64 hex> (a tag is pinned when the rollout starts)`,
        );
      }
      const pinned = { ...ref, digest: ref.digest };
      const name = formatOciReference(pinned, 'pinned');
      const manifest = imageManifestOf(await fetchManifest(pinned), name);
      const work = join(input.outDir, 'oci');
      await rm(work, { recursive: true, force: true });
      await mkdir(work, { recursive: true });
      try {
        const layout = join(work, 'layout');
        await pullToLayout(runner, pinned, manifest, layout);
        const rootfs = join(work, 'rootfs');
        const args = ['raw', 'unpack'];
        if (process.getuid?.() !== 0) args.push('--rootless');
        args.push('--image', `${layout}:img`, rootfs);
        const unpacked = await runner.run('umoci', args, { timeoutMs: 3_600_000 });
        if (!unpacked.ok) {
          throw new BuildError(
            `umoci could not unpack ${name}: ${unpacked.failure}; install umoci (apt-get install umoci)`,
          );
        }
        const pack = input.format === 'squashfs' ? createSquashfsBuilder(deps) : createExt4Builder(deps);
        const seed = manifest.layers.map((l) => l.digest).join(',');
        const out = await pack.build({ ...input, source: rootfs, seed });
        return { ...out, builder: `skopeo+umoci+${out.builder}` };
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },
  };
}
