// Collects one node's events from SLOTFLOW_EVENTS (the stream, so de-duplicated as stored).
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventLog, LoggedEvent } from '../../eventlog/index.ts';
import { nodeEventsFilter, type NodeEvent } from '../../schema/index.ts';

/** A node's stored events, in stream order, as they arrive. */
export class EventWatch {
  readonly events: LoggedEvent[] = [];
  readonly #abort = new AbortController();
  #done: Promise<void>;

  constructor(log: EventLog, nodeId: string) {
    this.#done = (async () => {
      try {
        for await (const e of log.follow({
          filters: [nodeEventsFilter(nodeId)],
          signal: this.#abort.signal,
        })) {
          this.events.push(e);
        }
      } catch {
        // stopped
      }
    })();
  }

  /** Events of one command, in order. */
  forCommand(commandId: string): NodeEvent[] {
    return this.events
      .map((e) => e.event as NodeEvent)
      .filter((e) => 'commandId' in e && e.commandId === commandId);
  }

  /** Waits until `predicate` holds for the collected events; throws with what came instead. */
  async waitFor<T>(
    what: string,
    predicate: (events: readonly LoggedEvent[]) => T | undefined | false,
    timeoutMs = 30_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = predicate(this.events);
      if (found) return found;
      if (Date.now() > deadline) {
        const seen = this.events.map((e) => e.event.type).join(', ');
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}; events so far: ${seen || 'none'}`,
        );
      }
      await sleep(25);
    }
  }

  /** Waits for the event that ends a command (committed, fell back, rolled back, rejected). */
  async outcome(commandId: string, timeoutMs = 30_000): Promise<NodeEvent> {
    return this.waitFor(
      `the outcome of ${commandId}`,
      () =>
        this.forCommand(commandId).find((e) =>
          ['UpgradeCommitted', 'NodeFellBack', 'NodeRolledBack', 'UpgradeCommandRejected'].includes(e.type),
        ),
      timeoutMs,
    );
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#done;
  }
}
