// KV put rate of the projector: it replays a stored rollout story into a fresh bucket
// (`createProjector`, which applies a batch of events in memory, then writes each view the batch
// changed once and its sequence last), against `nats bench kv put` (puts from one client) with
// the projector's mean value size, on the same fresh nats-server. Puts per event and events per
// second are in the details: batching lowers the first and raises the second.
import { join } from 'node:path';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { openEventLog } from '../eventlog/index.ts';
import { createProjector, openProjectionBucket } from '../projection/index.ts';
import { createLogger } from '../runtime/log.ts';
import { startNats } from '../test/helpers/servers.ts';
import { appendAll, PUBLISH_WINDOW } from './event-log-publish.ts';
import { rolloutStory } from './event-story.ts';
import { signedStory } from '../simulator/identity.ts';
import { trustKeys } from '../signing/index.ts';
import { benchControlPlaneKey } from './signed.ts';
import { GoalKind, measured, notMeasured, round, type FigureSpec } from './figure.ts';
import { runNatsBench } from './natscli.ts';
import { best } from './stats.ts';
import { bySize, type BenchModule } from './suite.ts';

const spec: FigureSpec = {
  id: 'kv-put-projector',
  title: 'KV put from the projector',
  comparedWith: 'nats bench kv put (same server, one client, same value size)',
  goal: { kind: GoalKind.ratioAtLeast, target: 0.5, text: '≥ 0.5' },
};

/** Put counts and bytes by key family, gathered by wrapping the bucket's put. */
interface PutTally {
  puts: number;
  bytes: number;
  byFamily: Record<string, { puts: number; bytes: number }>;
}

function countingKv(kv: KV, tally: PutTally): KV {
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === 'put') {
        return (key: string, value: string | Uint8Array, options?: Parameters<KV['put']>[2]) => {
          const bytes = typeof value === 'string' ? Buffer.byteLength(value) : value.byteLength;
          const family = key.split('.')[0] ?? key;
          const f = (tally.byFamily[family] ??= { puts: 0, bytes: 0 });
          f.puts++;
          f.bytes += bytes;
          tally.puts++;
          tally.bytes += bytes;
          return target.put(key, value, options);
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export const projectorKvBench: BenchModule = {
  name: 'projector-kv',
  summary: 'projector KV puts per second against nats bench kv put',
  figures: () => [spec],
  async run(ctx) {
    const nodes = bySize(ctx.size, { tiny: 10, quick: 200, full: 1_000 });
    const rounds = bySize(ctx.size, { tiny: 1, quick: 2, full: 3 });
    const nats = await startNats();
    let nc: NatsConnection | undefined;
    const logger = createLogger('bench:projector');
    logger.level = 'warn';
    try {
      nc = await nats.connect();
      const log = await openEventLog(nc);
      // Enrolled nodes' signed events, as the projector sees them in a real fleet.
      const key = benchControlPlaneKey();
      const story = signedStory(rolloutStory(nodes, 'kv'), key);
      ctx.say(`projector-kv: storing a ${nodes}-node rollout story (${story.length} events)`);
      await appendAll(log, story, PUBLISH_WINDOW);
      const lastSeq = await log.lastSeq();
      const natscli = await ctx.natscli();
      const ours: number[] = [];
      const eventsPerSec: number[] = [];
      const theirs: number[] = [];
      let tally: PutTally = { puts: 0, bytes: 0, byFamily: {} };
      let command = '';
      let peerError: string | undefined;
      for (let r = 0; r < rounds; r++) {
        ctx.say(`projector-kv: round ${r + 1}/${rounds}`);
        tally = { puts: 0, bytes: 0, byFamily: {} };
        const kv = countingKv(await openProjectionBucket(nc, `bench_projection_${r}`), tally);
        const projector = createProjector({ log, kv, logger, trustedKeys: trustKeys(key.publicKey) });
        const started = performance.now();
        await projector.start();
        await projector.waitForSeq(lastSeq, 30 * 60_000);
        const seconds = (performance.now() - started) / 1000;
        await projector.stop();
        ours.push(tally.puts / seconds);
        eventsPerSec.push(lastSeq / seconds);
        if (!natscli.ok || peerError) continue;
        const size = Math.max(1, Math.round(tally.bytes / tally.puts));
        try {
          const peer = await runNatsBench(
            natscli.tool,
            nats.url,
            [
              'bench',
              'kv',
              'put',
              // natscli creates only its default bucket (benchbucket); later rounds overwrite its keys.
              '--storage',
              'file',
              '--msgs',
              String(Math.min(tally.puts, 20_000)),
              '--size',
              `${size}B`,
            ],
            join(ctx.workDir, `kv-put-${r}.csv`),
          );
          theirs.push(peer.msgsPerSec);
          command = peer.command;
        } catch (err) {
          peerError = (err as Error).message;
        }
      }
      const meanPut = Math.round(tally.bytes / Math.max(1, tally.puts));
      const value = { amount: Math.round(best(ours)), unit: 'puts/s' };
      const details = {
        storyNodes: nodes,
        events: lastSeq,
        putsPerPass: tally.puts,
        meanPutBytes: meanPut,
        putsByFamily: Object.fromEntries(
          Object.entries(tally.byFamily).map(([k, f]) => [
            k,
            { puts: f.puts, meanBytes: Math.round(f.bytes / f.puts) },
          ]),
        ),
        projectorEventsPerSec: round(best(eventsPerSec), 1),
        rounds,
        samples: { projector: ours.map((v) => Math.round(v)), natsBench: theirs.map((v) => Math.round(v)) },
        ...(command ? { natsBench: command } : {}),
      };
      if (!natscli.ok) return [notMeasured(spec, 'unavailable', natscli.reason, { ...details, value })];
      if (theirs.length === 0)
        return [notMeasured(spec, 'failed', peerError ?? 'nats bench gave no rate', { ...details, value })];
      const reason =
        `${round(tally.puts / lastSeq, 2)} puts per event (each batch writes a changed view once); ` +
        `the projector applies ${Math.round(best(eventsPerSec)).toLocaleString('en-US')} events/s`;
      return [
        measured(spec, value, { amount: Math.round(best(theirs)), unit: 'puts/s' }, { reason, details }),
      ];
    } finally {
      await nc?.close().catch(() => undefined);
      await nats.stop();
    }
  },
};
