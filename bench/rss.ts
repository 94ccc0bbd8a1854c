// Resident memory of processes, from /proc (Linux): a sampler for peaks during a workload and
// the bare Node process every RSS figure is compared with.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** VmRSS of a process in bytes, or undefined when it is gone (or not on Linux). */
export async function rssOf(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  const kb = status ? /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] : undefined;
  return kb === undefined ? undefined : Number(kb) * 1024;
}

/** Samples a process's RSS until stopped; reports the peak and the mean of the samples. */
export function sampleRss(
  pid: number,
  everyMs = 250,
): { stop(): Promise<{ peak: number; mean: number; samples: number }> } {
  let running = true;
  let peak = 0;
  let sum = 0;
  let samples = 0;
  const loop = (async () => {
    while (running) {
      const rss = await rssOf(pid);
      if (rss !== undefined) {
        peak = Math.max(peak, rss);
        sum += rss;
        samples++;
      }
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { peak, mean: samples ? sum / samples : 0, samples };
    },
  };
}

/**
 * RSS of a bare Node process (same binary, an idle timer, nothing loaded) after it settles: the
 * floor every Node-based slotflow process starts from.
 */
export async function bareNodeRss(settleMs = 1_000): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60_000)'], { stdio: 'ignore' });
  try {
    await sleep(settleMs);
    const rss = child.pid === undefined ? undefined : await rssOf(child.pid);
    if (rss === undefined) throw new Error('could not read the RSS of a bare node process from /proc');
    return rss;
  } finally {
    child.kill('SIGKILL');
  }
}

/** Bytes as MiB with one decimal. */
export function mib(bytes: number): number {
  return Math.round((bytes / 1024 ** 2) * 10) / 10;
}
