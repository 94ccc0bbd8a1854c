// Cost of node trust. (1) The goal's figure: node events/s through the worker's event bridge into
// real workflows on a Temporal dev server, the trust gate verifying every event (bench/bridge.ts),
// against the same bridge with a pass-through gate. (2) The gate alone: the stream read in order,
// each node event's signature checked against its enrolled key and its number against the replay
// window, against the same stream read without verification, as the bridge read it before.
// Temporal signals are left out of (2) on purpose: it is verification's own ceiling, the worst
// case, reported beside (1). (3) The agent's per-event signing cost (number, canonical form,
// ed25519), reported.
import { sign } from 'node:crypto';
import { loadavg } from 'node:os';
import type { NatsConnection } from '@nats-io/nats-core';
import { openEventLog, type EventLog } from '../eventlog/index.ts';
import { createLogger } from '../runtime/log.ts';
import { canonicalBytes, nodeEventsFilter, trustEventsFilter, type NodeEvent } from '../schema/index.ts';
import { eventStamp } from '../node-agent/event-signer.ts';
import { nodeEvent } from '../node-agent/events.ts';
import { trustKeys } from '../signing/index.ts';
import { newNodeIdentity, signedStory } from '../simulator/identity.ts';
import { startNats } from '../test/helpers/servers.ts';
import { createRejectionRecorder, startTrustGate } from '../trust/index.ts';
import { measureBridge } from './bridge.ts';
import { rolloutStory } from './event-story.ts';
import { appendAll, PUBLISH_WINDOW } from './event-log-publish.ts';
import { GoalKind, measured, notMeasured, round, type FigureSpec } from './figure.ts';
import { benchControlPlaneKey } from './signed.ts';
import { best } from './stats.ts';
import { bySize, type BenchModule } from './suite.ts';

const bridgeSpec: FigureSpec = {
  id: 'bridge-verify-rate',
  title: 'Node events through the bridge into workflows, signature verification on',
  comparedWith: 'the same bridge and workflows with verification off (pass-through gate)',
  goal: { kind: GoalKind.ratioAtLeast, target: 0.8, text: '≥ 0.8' },
};

const gateSpec: FigureSpec = {
  id: 'trust-gate-verify-rate',
  title: "The bridge's trust gate alone (read in order, verify), no signals",
  comparedWith: 'the same stream read without verification',
  goal: { kind: GoalKind.report, text: 'reported (worst case)' },
};

/** The 1, 5 and 15 minute load averages, as `uptime` prints them. */
const load = () => loadavg().map((l) => Math.round(l * 100) / 100);

const signSpec: FigureSpec = {
  id: 'agent-event-signing',
  title: "Agent's per-event signing cost (number, canonical form, ed25519)",
  comparedWith: 'a bare node:crypto ed25519 signature of the same canonical bytes',
  goal: { kind: GoalKind.report, text: 'reported' },
};

/** Node events/s the plain reader gets through, from sequence 1 to `last`. */
async function readPlain(log: EventLog, last: number): Promise<number> {
  const abort = new AbortController();
  const started = performance.now();
  for await (const { seq } of log.follow({
    filters: [nodeEventsFilter(), trustEventsFilter()],
    signal: abort.signal,
  })) {
    if (seq >= last) abort.abort();
  }
  return last / ((performance.now() - started) / 1000);
}

/** Events/s through a fresh trust gate until its verdict on `last`. */
async function readGated(
  log: EventLog,
  last: number,
  trusted: ReturnType<typeof trustKeys>,
): Promise<number> {
  const logger = createLogger('bench:trust');
  logger.level = 'error';
  const started = performance.now();
  const gate = startTrustGate({
    log,
    trustedKeys: trusted,
    recorder: createRejectionRecorder(undefined, logger),
    logger,
  });
  const verdict = await gate.verdict(last);
  const seconds = (performance.now() - started) / 1000;
  await gate.stop();
  if (!verdict.ok) throw new Error(`the story's last event was refused: ${verdict.message}`);
  return last / seconds;
}

/** µs per event: the agent's stamp (number, canonical form, signature), and a bare signature. */
function signingMicros(count: number): { stamp: number; bare: number } {
  const identity = newNodeIdentity();
  const stamp = eventStamp(identity);
  const event: NodeEvent = nodeEvent('bench-node', 'NodeHeartbeat', {
    version: '1.0.0',
    activeSlot: 'a',
    state: 'idle',
  });
  let started = performance.now();
  for (let i = 1; i <= count; i++) stamp(event, i);
  const ours = ((performance.now() - started) * 1000) / count;
  const bytes = canonicalBytes({ ...event, seq: 1 });
  started = performance.now();
  for (let i = 1; i <= count; i++) sign(null, bytes, identity.privateKey);
  return { stamp: ours, bare: ((performance.now() - started) * 1000) / count };
}

export const trustBench: BenchModule = {
  name: 'trust',
  summary:
    'node events through the bridge into workflows with and without signature verification; the gate alone; agent signing cost',
  figures: () => [bridgeSpec, gateSpec, signSpec],
  async run(ctx) {
    const nodes = bySize(ctx.size, { tiny: 10, quick: 300, full: 1_000 });
    const rounds = bySize(ctx.size, { tiny: 1, quick: 3, full: 5 });
    const signs = bySize(ctx.size, { tiny: 200, quick: 5_000, full: 20_000 });
    const bridgeNodes = bySize(ctx.size, { tiny: 4, quick: 60, full: 200 });
    const figures = [];
    const bridgeKey = benchControlPlaneKey();
    const bridgeStory = signedStory(rolloutStory(bridgeNodes, 'bridge'), bridgeKey);
    const loadBefore = load();
    try {
      const r = await measureBridge({
        story: bridgeStory,
        trustedKeys: trustKeys(bridgeKey.publicKey),
        rounds,
        deadlineMs: bySize(ctx.size, { tiny: 120_000, quick: 300_000, full: 600_000 }),
        say: ctx.say,
      });
      figures.push(
        measured(
          bridgeSpec,
          { amount: round(best(r.verified), 0), unit: 'events/s' },
          { amount: round(best(r.unverified), 0), unit: 'events/s' },
          {
            details: {
              nodes: bridgeNodes,
              signals: r.signals,
              workflows: r.workflows,
              rounds,
              verified: r.verified.map((x) => round(x, 1)),
              unverified: r.unverified.map((x) => round(x, 1)),
              loadAverage: { start: loadBefore, end: load() },
            },
          },
        ),
      );
    } catch (err) {
      figures.push(notMeasured(bridgeSpec, 'failed', (err as Error).message));
    }
    const gateLoadBefore = load();
    const nats = await startNats();
    let nc: NatsConnection | undefined;
    try {
      nc = await nats.connect();
      const log = await openEventLog(nc);
      const key = benchControlPlaneKey();
      const story = signedStory(rolloutStory(nodes, 'trust'), key);
      ctx.say(`trust: storing ${story.length} events of ${nodes} enrolled nodes`);
      await appendAll(log, story, PUBLISH_WINDOW);
      // The last node or trust event: where both readers stop.
      let last = 0;
      for await (const { seq } of log.replay({ filters: [nodeEventsFilter(), trustEventsFilter()] }))
        last = seq;
      const plain: number[] = [];
      const gated: number[] = [];
      for (let r = 0; r < rounds; r++) {
        ctx.say(`trust: round ${r + 1}/${rounds}`);
        plain.push(await readPlain(log, last));
        gated.push(await readGated(log, last, trustKeys(key.publicKey)));
      }
      figures.push(
        measured(
          gateSpec,
          { amount: round(best(gated), 0), unit: 'events/s' },
          { amount: round(best(plain), 0), unit: 'events/s' },
          {
            details: {
              nodes,
              events: last,
              rounds,
              gated,
              plain,
              loadAverage: { start: gateLoadBefore, end: load() },
            },
          },
        ),
      );
    } catch (err) {
      figures.push(notMeasured(gateSpec, 'failed', (err as Error).message));
    } finally {
      await nc?.close();
      await nats.stop();
    }
    const micros = signingMicros(signs);
    figures.push(
      measured(
        signSpec,
        { amount: round(micros.stamp, 1), unit: 'µs/event' },
        { amount: round(micros.bare, 1), unit: 'µs/event' },
        { details: { signs } },
      ),
    );
    return figures;
  },
};
