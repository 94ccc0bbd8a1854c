// Power loss for files, not only for processes. A SIGKILL keeps the kernel's page cache, so every
// write the agent made survives it whether or not it was fsynced; a real power cut loses what was
// never flushed. With durability-tracer.ts loaded into the agent, the ledger knows the content of
// every file as of its last fsync and every directory's entries as of its last fsync; dropUnsynced()
// rebuilds a data directory from that alone (after the machine is dead, before it powers on), so
// an unsynced write, rename, create or unlink is lost as on a real disk. Where a file had unsynced
// writes on top of synced content, the rebuilt file is either the synced content or a torn mix of
// synced and unsynced 4 KiB pages (written-back pages survive in any subset), chosen by the seeded
// random source. Files never fsynced but named by a synced directory come back empty or as a torn
// prefix (delayed allocation). What it cannot model: reordering inside one fsync, a disk that lies
// about flushes, metadata-only syncs (fdatasync is treated as fsync), and writes by other programs
// (grub-editenv, rauc) whose fsyncs it does not see.
import { copyFile, lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The preload that records fsyncs inside the agent. */
export const DURABILITY_TRACER = fileURLToPath(new URL('./durability-tracer.ts', import.meta.url));

const PAGE = 4096;

type Entries = Record<string, { ino: number; dir: boolean }>;

/** What one power loss threw away. */
export interface DropStats {
  /** Files that came back as their last synced content (unsynced writes lost). */
  reverted: number;
  /** Files that came back as a mix of synced and unsynced pages. */
  torn: number;
  /** Directory entries removed: created or renamed in, never made durable by a directory fsync. */
  removed: number;
  /** Directory entries that came back: unlinked or renamed away without a directory fsync. */
  restored: number;
}

/** The environment that loads the tracer into an agent and points it at its ledger. */
export function tracerEnv(
  ledger: string,
  keep: readonly string[] = ['journal.json.tmp'],
): Record<string, string> {
  return {
    NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import ${DURABILITY_TRACER}`.trim(),
    SLOTFLOW_DURABLE_LEDGER: ledger,
    SLOTFLOW_DURABLE_KEEP: keep.join(','),
  };
}

/** One machine's disk: its data directory and the ledger its agent writes. */
export class PageCache {
  readonly root: string;
  readonly ledger: string;

  constructor(root: string, ledger: string) {
    this.root = root;
    this.ledger = ledger;
  }

  /**
   * Everything on disk now is durable (a fresh power-on: what the disk holds is all there is).
   * Keeps the kept-versions history.
   */
  async baseline(): Promise<void> {
    await mkdir(this.ledger, { recursive: true });
    for (const name of await readdir(this.ledger)) {
      if (name !== 'kept.ndjson') await rm(join(this.ledger, name), { force: true });
    }
    await this.#record(this.root);
  }

  async #record(dir: string): Promise<void> {
    const st = await lstat(dir);
    const entries: Entries = {};
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      const e = await lstat(path).catch(() => undefined);
      if (!e) continue;
      entries[name] = { ino: e.ino, dir: e.isDirectory() };
      if (e.isDirectory()) await this.#record(path);
      else if (e.isFile()) await copyFile(path, join(this.ledger, `ino-${e.ino}`));
    }
    await writeFile(join(this.ledger, `dir-${st.ino}.json`), JSON.stringify({ path: dir, entries }));
  }

  /** Rebuilds the data directory from what was synced; call only while the machine is off. */
  async dropUnsynced(random: () => number): Promise<DropStats> {
    const stats: DropStats = { reverted: 0, torn: 0, removed: 0, restored: 0 };
    await this.#rebuild(this.root, random, stats);
    return stats;
  }

  async #durableEntries(ino: number): Promise<Entries | undefined> {
    const text = await readFile(join(this.ledger, `dir-${ino}.json`), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as { entries: Entries }).entries;
  }

  async #durableContent(ino: number): Promise<Buffer | undefined> {
    return readFile(join(this.ledger, `ino-${ino}`)).catch(() => undefined);
  }

  async #rebuild(dir: string, random: () => number, stats: DropStats): Promise<void> {
    const st = await lstat(dir);
    // A directory never synced since power-on: none of its entries are durable.
    const durable = (await this.#durableEntries(st.ino)) ?? {};
    for (const name of await readdir(dir)) {
      if (!(name in durable)) {
        await rm(join(dir, name), { recursive: true, force: true });
        stats.removed += 1;
      }
    }
    for (const [name, entry] of Object.entries(durable)) {
      const path = join(dir, name);
      const now = await lstat(path).catch(() => undefined);
      if (entry.dir) {
        if (!now) {
          await mkdir(path);
          stats.restored += 1;
        }
        await this.#rebuild(path, random, stats);
        continue;
      }
      const synced = await this.#durableContent(entry.ino);
      const current = now?.ino === entry.ino && now.isFile() ? await readFile(path) : undefined;
      if (!now || now.ino !== entry.ino) stats.restored += 1;
      let content: Buffer;
      if (synced === undefined) {
        // Named by a synced directory but its data never synced: empty, or a prefix that was
        // written back by chance.
        content = current
          ? current.subarray(0, Math.floor(random() * (current.length / PAGE + 1)) * PAGE)
          : Buffer.alloc(0);
        if (current && !content.equals(current)) stats.torn += 1;
      } else if (current === undefined || current.equals(synced)) {
        content = synced;
      } else if (random() < 0.5) {
        content = synced;
        stats.reverted += 1;
      } else {
        content = tornMix(synced, current, random);
        stats.torn += 1;
      }
      if (current !== undefined && content.equals(current)) continue;
      if (now) await rm(path, { recursive: true, force: true });
      await writeFile(path, content);
    }
  }

  /** Every synced version of the kept files (the journal's history), oldest first. */
  async keptVersions(): Promise<{ path: string; text: string }[]> {
    const text = await readFile(join(this.ledger, 'kept.ndjson'), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { path: string; text: string });
  }
}

/** Each page from either version, the length of either. */
function tornMix(synced: Buffer, current: Buffer, random: () => number): Buffer {
  const length = random() < 0.5 ? synced.length : current.length;
  const out = Buffer.alloc(length);
  for (let at = 0; at < length; at += PAGE) {
    const from = random() < 0.5 ? synced : current;
    const piece = from.subarray(at, Math.min(at + PAGE, length));
    piece.copy(out, at);
    // A page past the end of the version it came from reads as zeros on disk.
  }
  return out;
}
