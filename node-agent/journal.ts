import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describeIssues } from '../schema/index.ts';
import { unlinkDurable, writeFileAtomic } from './atomic-file.ts';
import { JournalError } from './errors.ts';
import type { NodeEvent } from '../schema/index.ts';
import { JOURNAL_VERSION, JournalData, emptyJournal } from './journal-data.ts';

/** Numbers and signs a node event with the node's key (see node-agent/event-signer.ts). */
export type EventStamp = (event: NodeEvent, seq: number) => NodeEvent;

/** How many finished commands the journal remembers for redelivery. */
const HANDLED_LIMIT = 200;

/** The agent's durable state: every change is fsynced before the agent acts on it. */
export interface Journal {
  /** The last committed document (do not mutate). */
  readonly data: Readonly<JournalData>;
  /**
   * Applies `mutate` to a copy and writes it atomically (temp file, fsync, rename, fsync dir).
   * Commits run one at a time in call order; the in-memory view changes only once it is on disk.
   */
  commit(mutate: (draft: JournalData) => void): Promise<JournalData>;
  /** Hands out the next event number for an event that is not journaled (a heartbeat), durably. */
  reserveEventSeq(): Promise<number>;
  /** Calls `listener` after every commit; returns the unsubscribe function. */
  onCommit(listener: (data: JournalData) => void): () => void;
}

/** Parses a journal file's text, migrating older shapes; throws JournalError naming the problem. */
export function parseJournal(text: string, file: string): JournalData {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new JournalError(
      `${file} is not JSON (${(err as Error).message}); it is replaced atomically, so this means disk trouble — move it away to start the agent with an empty journal`,
      { cause: err },
    );
  }
  const v = (raw as { v?: unknown } | null)?.v;
  if (typeof v === 'number' && v > JOURNAL_VERSION) {
    throw new JournalError(
      `${file} has journal version ${v}, this agent reads up to ${JOURNAL_VERSION}; run the newer agent that wrote it`,
    );
  }
  const parsed = JournalData.safeParse(raw);
  if (!parsed.success) {
    throw new JournalError(
      `${file} is not a valid journal:\n  - ${describeIssues(parsed.error.issues, raw).join('\n  - ')}`,
      { cause: parsed.error },
    );
  }
  return parsed.data;
}

/** Reads the journal at `file`, or starts an empty one (written at once) when there is none. */
export async function openJournal(
  file: string,
  now: () => Date = () => new Date(),
  /** Signs events as they enter the outbox (the agent always passes one). */
  stamp?: EventStamp,
): Promise<Journal> {
  await mkdir(dirname(file), { recursive: true });
  // A leftover temp file is a commit that never happened; the renamed file is the truth.
  await unlinkDurable(`${file}.tmp`);
  let data: JournalData;
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new JournalError(`cannot read the journal ${file}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (text === undefined) {
    data = emptyJournal(now());
    await write(file, data);
  } else {
    data = parseJournal(text, file);
  }

  const listeners = new Set<(data: JournalData) => void>();
  let queue: Promise<unknown> = Promise.resolve();

  const journal: Journal = {
    get data() {
      return data;
    },
    commit(mutate) {
      const run = queue.then(async () => {
        const draft = structuredClone(data);
        mutate(draft);
        if (stamp) stampOutbox(draft, stamp);
        draft.seq = data.seq + 1;
        const t = now().getTime();
        for (const [nonce, expiresAt] of Object.entries(draft.nonces)) {
          if (expiresAt < t) delete draft.nonces[nonce];
        }
        if (draft.handled.length > HANDLED_LIMIT) draft.handled = draft.handled.slice(-HANDLED_LIMIT);
        await write(file, draft);
        data = draft;
        for (const listener of listeners) listener(data);
        return data;
      });
      // A failed commit must not block the ones queued after it.
      queue = run.catch(() => undefined);
      return run;
    },
    async reserveEventSeq() {
      const next = await journal.commit((d) => {
        d.eventSeq += 1;
      });
      return next.eventSeq;
    },
    onCommit(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return journal;
}

/**
 * Signs every outbox event that is not signed yet, numbering it from the journal's counter in the
 * same commit that records it, so the number and the event reach the disk together. The
 * finished-command record that holds the same event gets the signed copy, so a re-sent result
 * is the identical signed event.
 */
function stampOutbox(draft: JournalData, stamp: EventStamp): void {
  const signed = new Map<string, NodeEvent>();
  draft.outbox = draft.outbox.map((event) => {
    if (event.sig) return event;
    draft.eventSeq += 1;
    const done = stamp(event, draft.eventSeq);
    signed.set(event.id, done);
    return done;
  });
  if (signed.size === 0) return;
  draft.handled = draft.handled.map((h) => {
    const done = signed.get(h.final.id);
    return done ? { ...h, final: done } : h;
  });
}

async function write(file: string, data: JournalData): Promise<void> {
  try {
    await writeFileAtomic(file, JSON.stringify(data));
  } catch (err) {
    throw new JournalError(`cannot write the journal ${file}: ${(err as Error).message}`, { cause: err });
  }
}
