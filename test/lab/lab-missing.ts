// What a VM lab test needs from the machine, so it can say what is missing instead of failing.
import { access } from 'node:fs/promises';
import { execaRunner } from '../../runtime/runner.ts';

/** Why the lab cannot run here (what to install), or undefined when it can. */
export async function labMissing(): Promise<string | undefined> {
  if (!(await execaRunner.run('qemu-system-x86_64', ['--version'], { timeoutMs: 10_000 })).ok)
    return 'qemu-system-x86_64 is not installed (bash scripts/system-packages.sh installs it)';
  try {
    await access('/usr/share/OVMF/OVMF_CODE_4M.fd');
  } catch {
    return 'OVMF is not installed (bash scripts/system-packages.sh installs it)';
  }
  return undefined;
}
