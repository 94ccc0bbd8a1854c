import { execa } from 'execa';
import { lastLines } from '../runtime/runner.ts';
import { LabBuildError } from './errors.ts';

/**
 * The Debian package of every host tool the lab runs; `scripts/system-packages.sh` installs the
 * same map, so a missing tool's error names what to install.
 */
export const LAB_TOOL_PACKAGES = {
  sfdisk: 'fdisk',
  'mkfs.vfat': 'dosfstools',
  mmd: 'mtools',
  mcopy: 'mtools',
  mtype: 'mtools',
  'grub-mkimage': 'grub-common (with grub-efi-amd64-bin for the x86_64-efi modules)',
  'grub-editenv': 'grub-common',
  'mkfs.ext4': 'e2fsprogs',
  debugfs: 'e2fsprogs',
  mksquashfs: 'squashfs-tools',
  dd: 'coreutils',
  cp: 'coreutils',
  socat: 'socat',
  ldd: 'libc-bin',
  'qemu-system-x86_64': 'qemu-system-x86',
} as const;

/** A host tool the lab uses. */
export type LabTool = keyof typeof LAB_TOOL_PACKAGES;

/** Options for one tool run. */
export interface ToolOptions {
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Text fed to the tool's stdin. */
  readonly input?: string;
}

/**
 * Runs a lab tool (via execa, with a timeout) and returns its stdout; throws LabBuildError
 * saying what was being done, how the tool failed and which package provides it.
 */
export async function runTool(
  tool: LabTool,
  args: readonly string[],
  what: string,
  options: ToolOptions = {},
): Promise<string> {
  const result = await execa(tool, args, {
    reject: false,
    timeout: options.timeoutMs ?? 120_000,
    env: options.env ?? process.env,
    extendEnv: false,
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
  });
  if (result.failed) {
    const why =
      result.code === 'ENOENT'
        ? `${tool} was not found`
        : result.timedOut
          ? `${tool} did not finish within ${options.timeoutMs ?? 120_000} ms`
          : `${tool} exited with code ${result.exitCode ?? result.signal}: ${lastLines(String(result.stderr || result.stdout), 5)}`;
    throw new LabBuildError(
      `${what}: expected '${tool}' to succeed, got: ${why}; ` +
        `install ${LAB_TOOL_PACKAGES[tool]} (bash scripts/system-packages.sh does it)`,
    );
  }
  return String(result.stdout);
}
