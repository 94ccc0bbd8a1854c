import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes a small but real root filesystem for the demo image (an os-release and an app). */
export async function writeDemoRootfs(dir: string, version: string): Promise<string> {
  await mkdir(join(dir, 'etc'), { recursive: true });
  await mkdir(join(dir, 'usr/local/bin'), { recursive: true });
  await writeFile(
    join(dir, 'etc/os-release'),
    `NAME="slotflow demo OS"\nID=slotflow-demo\nVERSION_ID=${version}\n`,
  );
  await writeFile(join(dir, 'etc/hostname'), 'slotflow-demo\n');
  await writeFile(join(dir, 'usr/local/bin/hello'), `#!/bin/sh\necho "hello from ${version}"\n`, {
    mode: 0o755,
  });
  // A few MiB of content so fetching and writing take a visible moment.
  await writeFile(join(dir, 'usr/local/bin/payload.bin'), Buffer.alloc(4 * 1024 * 1024, version));
  for (const p of ['etc/os-release', 'etc/hostname', 'usr/local/bin/hello', 'usr/local/bin/payload.bin']) {
    await utimes(join(dir, p), 1_700_000_000, 1_700_000_000);
  }
  return dir;
}
