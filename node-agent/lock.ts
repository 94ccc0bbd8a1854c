import { open, readFile, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentLockError } from './errors.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the data directory for this process (a pid file). Two agents on one directory would
 * corrupt each other's slots, so a live holder is waited for briefly (a restart that overlaps the
 * old process's last moments) and then refused. Returns the release function.
 */
export async function lockDataDir(file: string, waitMs = 5_000): Promise<() => Promise<void>> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const handle = await open(file, 'wx', 0o644);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return async () => {
        await unlink(file).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(holder) || holder <= 0 || holder === process.pid || !alive(holder)) {
      await unlink(file).catch(() => undefined);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new AgentLockError(
        `another agent (pid ${holder}) uses this data directory (${file}); stop it or give this one its own --data-dir`,
      );
    }
    await sleep(100);
  }
}
