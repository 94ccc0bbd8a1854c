// JetStream publish rate of the event log (`openEventLog(nc).appendBatch`: zod validation, one
// subject per node and type, Nats-Msg-Id de-duplication) in batches of 500 appends in flight, against
// `nats bench js pub async` with the same batch, message size, de-duplication and subject spread
// on the same fresh nats-server.
import { join } from 'node:path';
import { StorageType } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { openEventLog, type EventLog } from '../eventlog/index.ts';
import type { DomainEventInput } from '../schema/index.ts';
import { startNats } from '../test/helpers/servers.ts';
import { rolloutStory } from './event-story.ts';
import { GoalKind, measured, notMeasured, round, type FigureSpec } from './figure.ts';
import { runNatsBench } from './natscli.ts';
import { best } from './stats.ts';
import { bySize, type BenchModule } from './suite.ts';

/** Appends in flight, as `nats bench js pub async --batch` keeps acknowledgements outstanding. */
export const PUBLISH_WINDOW = 500;

const spec: FigureSpec = {
  id: 'jetstream-publish',
  title: 'JetStream async publish from the event log',
  comparedWith: 'nats bench js pub async (same server, size, batch, dedup)',
  goal: { kind: GoalKind.ratioAtLeast, target: 0.5, text: '≥ 0.5' },
};

/**
 * Appends every event in batches of `window` (each batch all in flight, then its acks, as
 * `nats bench js pub async --batch` publishes); returns events/s.
 */
export async function appendAll(
  log: EventLog,
  events: readonly DomainEventInput[],
  window: number,
): Promise<number> {
  const started = performance.now();
  for (let from = 0; from < events.length; from += window)
    await log.appendBatch(events.slice(from, from + window));
  return events.length / ((performance.now() - started) / 1000);
}

/** `count` js.publish calls of `size` bytes, one subject and msgID each, in batches of `PUBLISH_WINDOW`. */
async function publishRaw(log: EventLog, count: number, size: number, tag: string): Promise<number> {
  const payload = new Uint8Array(size).fill(120);
  const started = performance.now();
  for (let from = 0; from < count; from += PUBLISH_WINDOW) {
    const acks: Promise<unknown>[] = [];
    for (let i = from; i < Math.min(count, from + PUBLISH_WINDOW); i++) {
      acks.push(
        log.js.publish(`bench.raw.${i}`, payload, {
          msgID: `${tag}.${i}`,
          expect: { streamName: 'BENCH_RAW' },
        }),
      );
    }
    await Promise.all(acks);
  }
  return count / ((performance.now() - started) / 1000);
}

/** Events of stories for enough nodes to give about `count` events, with ids unique to `tag`. */
function storyOf(count: number, tag: string): DomainEventInput[] {
  return rolloutStory(Math.max(2, Math.round(count / 10)), tag).slice(0, count);
}

const meanBytes = (events: readonly DomainEventInput[]) =>
  Math.round(events.reduce((s, e) => s + Buffer.byteLength(JSON.stringify(e)), 0) / events.length);

export const eventLogPublishBench: BenchModule = {
  name: 'event-log-publish',
  summary: 'event log appends per second against nats bench js pub async',
  figures: () => [spec],
  async run(ctx) {
    const count = bySize(ctx.size, { tiny: 1_000, quick: 20_000, full: 100_000 });
    const rounds = bySize(ctx.size, { tiny: 1, quick: 2, full: 3 });
    const nats = await startNats();
    let nc: NatsConnection | undefined;
    try {
      nc = await nats.connect();
      const log = await openEventLog(nc);
      const size = meanBytes(storyOf(Math.min(count, 5_000), 'size'));
      const natscli = await ctx.natscli();
      // The same publishes straight through nats.js (no event log), to tell the log's own cost
      // from the client library's.
      await log.jsm.streams.add({ name: 'BENCH_RAW', subjects: ['bench.raw.>'], storage: StorageType.File });
      const ours: number[] = [];
      const raw: number[] = [];
      const theirs: number[] = [];
      let command = '';
      let peerError: string | undefined;
      for (let r = 0; r < rounds; r++) {
        ctx.say(`event-log-publish: round ${r + 1}/${rounds}, ${count} events`);
        ours.push(await appendAll(log, storyOf(count, `r${r}`), PUBLISH_WINDOW));
        raw.push(await publishRaw(log, count, size, `r${r}`));
        if (!natscli.ok || peerError) continue;
        try {
          const peer = await runNatsBench(
            natscli.tool,
            nats.url,
            [
              'bench',
              'js',
              'pub',
              'async',
              'bench.evt',
              '--create',
              '--storage',
              'file',
              '--dedup',
              '--multisubject',
              '--batch',
              String(PUBLISH_WINDOW),
              '--msgs',
              String(count),
              '--size',
              `${size}B`,
            ],
            join(ctx.workDir, `js-pub-${r}.csv`),
          );
          theirs.push(peer.msgsPerSec);
          command = peer.command;
        } catch (err) {
          peerError = (err as Error).message;
        }
      }
      const value = { amount: Math.round(best(ours)), unit: 'msgs/s' };
      const details = {
        events: count,
        meanEventBytes: size,
        window: PUBLISH_WINDOW,
        rounds,
        samples: {
          eventLog: ours.map((v) => Math.round(v)),
          natsJsPublish: raw.map((v) => Math.round(v)),
          natsBench: theirs.map((v) => Math.round(v)),
        },
        natsJsPublishNote:
          'js.publish from nats.js with the same size, msgID and window, without the event log',
        ...(command ? { natsBench: command } : {}),
      };
      if (!natscli.ok) return [notMeasured(spec, 'unavailable', natscli.reason, { ...details, value })];
      if (theirs.length === 0)
        return [notMeasured(spec, 'failed', peerError ?? 'nats bench gave no rate', { ...details, value })];
      return [
        measured(
          spec,
          value,
          { amount: Math.round(best(theirs)), unit: 'msgs/s' },
          {
            details: { ...details, meanMiBps: round((best(ours) * size) / 1024 ** 2, 1) },
          },
        ),
      ];
    } finally {
      await nc?.close().catch(() => undefined);
      await nats.stop();
    }
  },
};
