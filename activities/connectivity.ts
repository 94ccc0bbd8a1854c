import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';

/** How long a JetStream round trip may take before the check calls it unreachable. */
export const JETSTREAM_PROBE_MS = 2_000;

/** What the worker knows about its link to JetStream. */
export interface JetStreamReach {
  /** A JetStream API request answered just now. */
  reachable: boolean;
  /** The connection dropped (or this worker started) at or after `since`: events may still be catching up. */
  interrupted: boolean;
}

/** Remembers when the connection last dropped, from the client's status stream. */
function watchConnection(nc: NatsConnection): { droppedAt(): number } {
  // A worker that started late cannot tell what happened before: count its start as a drop.
  let droppedAt = Date.now();
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnect' || status.type === 'staleConnection') {
        droppedAt = Date.now();
      }
    }
  })().catch(() => undefined);
  return { droppedAt: () => droppedAt };
}

async function probe(jsm: JetStreamManager): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), JETSTREAM_PROBE_MS);
  });
  try {
    return await Promise.race([jsm.getAccountInfo().then(() => true), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Activities that tell a workflow whether silence from a node may just be a NATS outage. */
export function createConnectivityActivities({ nc, jsm }: { nc: NatsConnection; jsm: JetStreamManager }) {
  const watch = watchConnection(nc);
  return {
    /** Asks JetStream for the account's info, with a short time limit; never throws. */
    async checkJetStream({ since }: { since: number }): Promise<JetStreamReach> {
      const reachable = !nc.isClosed() && (await probe(jsm));
      return { reachable, interrupted: !reachable || watch.droppedAt() >= since };
    },
  };
}
