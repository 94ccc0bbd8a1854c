// Converting an OCI image into a slot image (the worker's path for file, grub and rauc nodes:
// manifest checked against its digest, skopeo copy, every blob re-hashed, umoci raw unpack, a
// reproducible mkfs.ext4 -d) against the same tools run by hand on the same image: skopeo copy,
// umoci unpack and mkfs.ext4 -d, with no checks and no reproducibility pass. Measured in turns
// against a real registry on loopback.
import { randomFillSync } from 'node:crypto';
import { mkdir, open, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool } from '../activities/builders/builder.ts';
import { createOciBuilder } from '../activities/builders/oci-convert.ts';
import { imageFromRootfs, pushImage } from '../activities/builders/oci-push.ts';
import { createLogger } from '../runtime/log.ts';
import { execaRunner } from '../runtime/runner.ts';
import {
  LaunchMode,
  pickFreePorts,
  REGISTRY_BINARY,
  registryAddress,
  registryServerSpec,
  startServer,
  terminate,
} from '../stack/index.ts';
import { GoalKind, measured, notMeasured, round, type FigureSpec } from './figure.ts';
import { mibPerSec } from './stats.ts';
import { bySize, type BenchModule } from './suite.ts';

const spec: FigureSpec = {
  id: 'oci-convert',
  title: 'OCI image to ext4 slot image (checked, reproducible)',
  comparedWith: 'skopeo copy + umoci unpack + mkfs.ext4 -d by hand, same image',
  goal: { kind: GoalKind.ratioAtLeast, target: 0.9, text: '≥ 0.9' },
};

const FILE_MIB = 4;

/** A rootfs of `mib` MiB of incompressible files, so the layer is as big as the image. */
async function writeRootfs(dir: string, mib: number): Promise<void> {
  await mkdir(join(dir, 'usr/share/data'), { recursive: true });
  await mkdir(join(dir, 'etc'), { recursive: true });
  await writeFile(join(dir, 'etc/os-release'), 'NAME="slotflow bench OS"\nVERSION_ID=1\n');
  const block = Buffer.allocUnsafe(FILE_MIB * 1024 * 1024);
  for (let i = 0; i * FILE_MIB < mib; i++) {
    randomFillSync(block);
    const file = await open(join(dir, `usr/share/data/blob-${i}.bin`), 'w');
    await file.write(block);
    await file.close();
  }
}

/** The same tools by hand: pull, unpack, pack; returns seconds. */
async function byHand(reference: string, dir: string, imageBytes: number): Promise<number> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const started = performance.now();
  await runTool(execaRunner, 'skopeo', [
    'copy',
    '--quiet',
    '--src-tls-verify=false',
    `docker://${reference}`,
    `oci:${dir}/layout:img`,
  ]);
  const unpack = ['unpack', ...(process.getuid?.() === 0 ? [] : ['--rootless'])];
  await runTool(execaRunner, 'umoci', [...unpack, '--image', `${dir}/layout:img`, `${dir}/bundle`]);
  const image = join(dir, 'image.ext4');
  await writeFile(image, '');
  await truncate(image, imageBytes);
  await runTool(execaRunner, 'mkfs.ext4', ['-q', '-F', '-d', `${dir}/bundle/rootfs`, image]);
  const seconds = (performance.now() - started) / 1000;
  await rm(dir, { recursive: true, force: true });
  return seconds;
}

export const ociConvertBench: BenchModule = {
  name: 'oci-convert',
  summary: 'OCI image → ext4 slot image against skopeo copy + umoci unpack + mkfs.ext4 -d',
  figures: () => [spec],
  async run(ctx) {
    const mib = bySize(ctx.size, { tiny: 8, quick: 64, full: 256 });
    const rounds = bySize(ctx.size, { tiny: 1, quick: 3, full: 3 });
    for (const tool of ['skopeo', 'umoci', 'buildah']) {
      if (!(await execaRunner.run(tool, ['--version'], { timeoutMs: 20_000 })).ok)
        return [notMeasured(spec, 'unavailable', `${tool} is missing; run scripts/system-packages.sh`)];
    }
    try {
      await stat(REGISTRY_BINARY);
    } catch {
      return [
        notMeasured(spec, 'unavailable', `${REGISTRY_BINARY} is missing; apt-get install docker-registry`),
      ];
    }
    const dir = join(ctx.workDir, 'oci-convert');
    const [port] = await pickFreePorts(1, '127.0.0.1');
    const options = {
      binary: REGISTRY_BINARY,
      host: '127.0.0.1',
      port: port!,
      dataDir: join(dir, 'registry'),
      logFile: join(dir, 'registry.log'),
    };
    const server = await startServer(
      registryServerSpec(options),
      LaunchMode.tethered,
      createLogger('bench:registry'),
    );
    try {
      ctx.say(`oci-convert: pushing a ${mib} MiB image to the registry`);
      const rootfs = join(dir, 'rootfs');
      await writeRootfs(rootfs, mib);
      const local = await imageFromRootfs(execaRunner, rootfs, 'localhost/slotflow-bench:oci-convert');
      const pushed = await pushImage(execaRunner, local, `${registryAddress(options)}/bench/os:1`);
      await execaRunner.run('buildah', ['rmi', local], { timeoutMs: 60_000 });
      await rm(rootfs, { recursive: true, force: true });

      const builder = createOciBuilder({ runner: execaRunner });
      const ours: number[] = [];
      const peer: number[] = [];
      let imageBytes = 0;
      for (let r = 0; r < rounds; r++) {
        ctx.say(`oci-convert: round ${r + 1}/${rounds}`);
        const outDir = join(dir, 'ours');
        const started = performance.now();
        const out = await builder.build({ source: pushed.reference, version: '1', outDir, format: 'ext4' });
        ours.push((performance.now() - started) / 1000);
        imageBytes = (await stat(out.path)).size;
        await rm(outDir, { recursive: true, force: true });
        peer.push(await byHand(pushed.reference, join(dir, 'peer'), imageBytes));
      }
      const bytes = mib * 1024 * 1024;
      const rate = (seconds: number) => ({ amount: round(mibPerSec(bytes / seconds), 1), unit: 'MiB/s' });
      return [
        measured(spec, rate(Math.min(...ours)), rate(Math.min(...peer)), {
          reason:
            'ours checks the manifest digest, re-hashes every blob and rewrites every timestamp for identical bytes; by hand, umoci unpack also writes its mtree manifest (a digest of every file), which umoci raw unpack skips',
          details: {
            imageMiB: mib,
            slotImageBytes: imageBytes,
            rounds,
            secondsOurs: ours.map((s) => round(s, 2)),
            secondsByHand: peer.map((s) => round(s, 2)),
          },
        }),
      ];
    } finally {
      await terminate(server.pid, 5_000);
    }
  },
};
