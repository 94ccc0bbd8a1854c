// Loaded into agent processes under test (NODE_OPTIONS=--import) when SLOTFLOW_DURABLE_LEDGER
// names a directory: after every fsync the process makes it records what that fsync made durable,
// so a power-loss test can throw away what only lived in the page cache (see page-cache.ts).
// - fsync of a file: a copy of its content, as `ino-<inode>` (the latest durable content).
// - fsync of a directory: its entries as `dir-<inode>.json` ({ name: { ino, dir } }).
// - files named in SLOTFLOW_DURABLE_KEEP (basenames, comma-separated) are also appended, every
//   synced version, to `kept.ndjson`: the journal's history of what its outbox held.
// The record is written before the awaited sync returns to its caller, so the agent can never act
// on an fsync the record does not show. The ledger is written without fsync on purpose: a SIGKILL
// keeps the page cache, and only the test process reads it.
import {
  appendFileSync,
  copyFileSync,
  fstatSync,
  lstatSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, join } from 'node:path';

const ledger = process.env['SLOTFLOW_DURABLE_LEDGER'];
const keep = new Set((process.env['SLOTFLOW_DURABLE_KEEP'] ?? '').split(',').filter(Boolean));

function record(fd: number): void {
  if (!ledger) return;
  const st = fstatSync(fd);
  const path = readlinkSync(`/proc/self/fd/${fd}`);
  if (st.isDirectory()) {
    const entries: Record<string, { ino: number; dir: boolean }> = {};
    for (const name of readdirSync(path)) {
      try {
        const e = lstatSync(join(path, name));
        entries[name] = { ino: e.ino, dir: e.isDirectory() };
      } catch {
        // removed while we looked: not part of this listing
      }
    }
    const tmp = join(ledger, `.dir-${st.ino}.${process.pid}`);
    appendFileSync(tmp, JSON.stringify({ path, entries }), { flag: 'w' });
    renameSync(tmp, join(ledger, `dir-${st.ino}.json`));
  } else if (st.isFile()) {
    const tmp = join(ledger, `.ino-${st.ino}.${process.pid}`);
    copyFileSync(`/proc/self/fd/${fd}`, tmp);
    renameSync(tmp, join(ledger, `ino-${st.ino}`));
    if (keep.has(basename(path))) {
      const text = readFileSync(`/proc/self/fd/${fd}`, 'utf8');
      appendFileSync(join(ledger, 'kept.ndjson'), `${JSON.stringify({ path, text })}\n`);
    }
  }
}

if (ledger) {
  const probe = await open(process.execPath, 'r');
  const proto = Object.getPrototypeOf(probe) as {
    sync(): Promise<void>;
    datasync(): Promise<void>;
    fd: number;
  };
  await probe.close();
  for (const method of ['sync', 'datasync'] as const) {
    const real = proto[method];
    proto[method] = async function (this: { fd: number }) {
      await real.call(this);
      record(this.fd);
    };
  }
}
