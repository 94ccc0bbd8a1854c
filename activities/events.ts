import { ApplicationFailure } from '@temporalio/common';
import type { EventLog } from '../eventlog/index.ts';
import { SchemaError, type DomainEventInput } from '../schema/index.ts';

/** Activities that write the workflow side of the story into SLOTFLOW_EVENTS. */
export function createEventActivities({ log }: { log: EventLog }) {
  return {
    /**
     * Appends events in order. Ids are deterministic per workflow step, so a retried activity
     * re-publishes the same ids and the stream drops the duplicates.
     */
    async recordEvents(events: DomainEventInput[]): Promise<number[]> {
      const seqs: number[] = [];
      for (const event of events) {
        try {
          seqs.push((await log.append(event)).seq);
        } catch (err) {
          if (err instanceof SchemaError) {
            throw ApplicationFailure.create({
              type: 'InvalidEvent',
              message: err.message,
              nonRetryable: true,
            });
          }
          throw err;
        }
      }
      return seqs;
    },
  };
}
