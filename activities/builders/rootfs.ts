import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BuildError,
  type BuildInput,
  type BuildOutput,
  type BuilderDeps,
  type ImageBuilder,
} from './builder.ts';

const BLOCK = 4096;
// Every timestamp mke2fs itself writes (superblock, lost+found) comes from this fixed time, so
// the same rootfs gives the same bytes. File times come from the rootfs itself.
const FIXED_EPOCH = '1';

/** Sum of file sizes rounded up to blocks, plus directory and inode overhead; deterministic. */
async function treeBytes(dir: string): Promise<{ bytes: number; entries: number }> {
  let bytes = 0;
  let entries = 0;
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const info = await lstat(path);
    entries++;
    if (info.isDirectory()) {
      const sub = await treeBytes(path);
      bytes += sub.bytes + BLOCK;
      entries += sub.entries;
    } else {
      bytes += Math.ceil(info.size / BLOCK) * BLOCK;
    }
  }
  return { bytes, entries };
}

/** Every path in the tree, relative with a leading '/', sorted (for a deterministic command file). */
async function treePaths(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const rel = `${prefix}/${name}`;
    out.push(rel);
    const info = await lstat(join(dir, name));
    if (info.isDirectory()) out.push(...(await treePaths(join(dir, name), rel)));
  }
  return out;
}

/**
 * mkfs.ext4 -d copies each file's atime and ctime, which differ between two checkouts of the
 * same tree; a debugfs pass sets every inode's times to SOURCE_DATE_EPOCH so only content counts.
 */
async function normalizeTimes(
  runner: BuilderDeps['runner'],
  image: string,
  rootfs: string,
  epoch: string,
): Promise<void> {
  const paths = ['/', '/lost+found', ...(await treePaths(rootfs))];
  const bad = paths.find((p) => /["\n\\]/.test(p));
  if (bad)
    throw new BuildError(
      `cannot build a reproducible image: file name ${JSON.stringify(bad)} contains a quote, backslash or newline`,
    );
  const lines: string[] = [];
  for (const p of paths) {
    for (const field of ['atime', 'mtime', 'ctime', 'crtime']) {
      lines.push(`sif "${p}" ${field} ${epoch}`, `sif "${p}" ${field}_extra 0`);
    }
  }
  const script = `${image}.debugfs`;
  await writeFile(script, `${lines.join('\n')}\n`);
  const result = await runner.run('debugfs', ['-w', '-f', script, image], {
    timeoutMs: 600_000,
    env: { ...process.env, E2FSPROGS_FAKE_TIME: FIXED_EPOCH },
  });
  await rm(script, { force: true });
  if (!result.ok)
    throw new BuildError(`debugfs could not normalise timestamps: ${result.failure}; install e2fsprogs`);
  const complaint = /debugfs: .*(not found|Invalid|error)/i.exec(result.stderr);
  if (complaint) throw new BuildError(`debugfs could not normalise timestamps: ${complaint[0]}`);
}

/** A UUID derived from a seed (the version, or an OCI image's layers), so the filesystem UUID and hash seed never vary by build. */
export function stableUuid(seed: string): string {
  const h = createHash('sha256').update(`slotflow:${seed}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

async function requireDir(path: string): Promise<void> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw new BuildError(
      `rootfs ${path} does not exist; pass --rootfs with a directory holding the root filesystem`,
      { cause: err },
    );
  }
  if (!info.isDirectory())
    throw new BuildError(`rootfs ${path} is not a directory; pass --rootfs with a directory`);
}

/** Packs a rootfs directory into an ext4 image with `mkfs.ext4 -d`, reproducibly. */
export function createExt4Builder({ runner }: BuilderDeps): ImageBuilder {
  return {
    name: 'rootfs-ext4',
    async build(input: BuildInput): Promise<BuildOutput> {
      await requireDir(input.source);
      await mkdir(input.outDir, { recursive: true });
      const out = join(input.outDir, 'image.ext4');
      await rm(out, { force: true });
      const { bytes, entries } = await treeBytes(input.source);
      // Room for metadata and journal: 30 % over the data plus a fixed floor, in whole MiB.
      const size = Math.ceil((bytes * 1.3 + entries * 256 + 8 * 1024 * 1024) / 1048576) * 1048576;
      await writeFile(out, '');
      await truncate(out, size);
      const uuid = stableUuid(input.seed ?? input.version);
      const version = await runner.run('mkfs.ext4', ['-V'], { timeoutMs: 10_000 });
      const result = await runner.run(
        'mkfs.ext4',
        [
          '-q',
          '-F',
          '-b',
          String(BLOCK),
          '-L',
          'slotflow',
          '-U',
          uuid,
          '-E',
          `hash_seed=${uuid},root_owner=0:0`,
          '-d',
          input.source,
          out,
        ],
        { timeoutMs: 600_000, env: { ...process.env, E2FSPROGS_FAKE_TIME: FIXED_EPOCH } },
      );
      if (!result.ok) {
        throw new BuildError(
          `mkfs.ext4 could not build the image: ${result.failure}; install e2fsprogs 1.43+ (mkfs.ext4 -d)`,
        );
      }
      await normalizeTimes(runner, out, input.source, process.env['SOURCE_DATE_EPOCH'] ?? '0');
      const tool = /mke2fs [\d.]+/.exec(version.stderr + version.stdout)?.[0] ?? 'mkfs.ext4';
      return { path: out, format: 'ext4', builder: tool };
    },
  };
}

/** Packs a rootfs directory into a squashfs image with `mksquashfs`, reproducibly. */
export function createSquashfsBuilder({ runner }: BuilderDeps): ImageBuilder {
  return {
    name: 'rootfs-squashfs',
    async build(input: BuildInput): Promise<BuildOutput> {
      await requireDir(input.source);
      await mkdir(input.outDir, { recursive: true });
      const out = join(input.outDir, 'image.squashfs');
      await rm(out, { force: true });
      // mksquashfs refuses SOURCE_DATE_EPOCH together with explicit times, so pass it as the times.
      const { SOURCE_DATE_EPOCH: epoch = '0', ...env } = process.env;
      const result = await runner.run(
        'mksquashfs',
        [
          input.source,
          out,
          '-noappend',
          '-no-progress',
          '-quiet',
          '-all-root',
          '-mkfs-time',
          epoch,
          '-all-time',
          epoch,
          '-processors',
          '1',
        ],
        { timeoutMs: 600_000, env },
      );
      if (!result.ok) {
        throw new BuildError(
          `mksquashfs could not build the image: ${result.failure}; install squashfs-tools 4.4+ (apt-get install squashfs-tools)`,
        );
      }
      return { path: out, format: 'squashfs', builder: 'mksquashfs' };
    },
  };
}
