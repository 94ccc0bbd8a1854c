// An audit of the events a node records: the id of each one appended to a file, one per line,
// as it enters the outbox — before the outbox (or a peer) can publish it. Held against the event
// stream it shows whether every event the node produced was stored, and stored once.
import { appendFileSync, readFileSync } from 'node:fs';
import type { JournalData } from './journal-data.ts';
import type { Journal } from './journal.ts';

function idsIn(file: string): Set<string> {
  try {
    return new Set(readFileSync(file, 'utf8').split('\n').filter(Boolean));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw err;
  }
}

/**
 * Appends the id of every event that enters the journal's outbox to `file`; returns the
 * unsubscribe. The write is synchronous inside the commit listener, so an id is on disk before
 * the publisher, woken by the same commit, gets to the event.
 */
export function keepEventLedger(file: string, journal: Journal): () => void {
  // An event stays in the outbox from its commit until it is published: ids seen in the last
  // outbox are all that can come again. After a restart, the ledger tells which were written.
  const written = idsIn(file);
  let last = new Set(journal.data.outbox.map((e) => e.id).filter((id) => written.has(id)));
  written.clear();
  const record = (data: JournalData) => {
    const now = new Set(data.outbox.map((e) => e.id));
    const fresh = [...now].filter((id) => !last.has(id));
    if (fresh.length > 0) appendFileSync(file, fresh.map((id) => `${id}\n`).join(''));
    last = now;
  };
  record(journal.data);
  return journal.onCommit(record);
}
