// A realistic event stream for the JetStream and KV benchmarks: `nodes` nodes register, then one
// rollout upgrades them all in waves of 1, 10 % and the rest, each node reporting the eight steps
// a real agent reports. Sizes and subjects are those of production events.
import type { DomainEventInput } from '../schema/index.ts';
import { planWaves } from '../workflows/planning.ts';

const digestOf = (c: string) => `sha256:${c.repeat(64)}`;

/** Every event of the story, in the order the log would hold them. */
export function rolloutStory(nodes: number, tag: string): DomainEventInput[] {
  const rolloutId = `bench-${tag}`;
  const nodeIds = Array.from({ length: nodes }, (_, i) => `node-${String(i + 1).padStart(5, '0')}`);
  const clock = Date.now();
  let n = 0;
  const at = () => new Date(clock + n).toISOString();
  const id = () => `${rolloutId}.e${++n}`;
  const events: DomainEventInput[] = [];
  for (const nodeId of nodeIds) {
    events.push({
      v: 1,
      id: id(),
      at: at(),
      type: 'NodeRegistered',
      nodeId,
      labels: { site: 'bench', rack: `r${nodeId.slice(-2)}` },
      version: '1.0.0',
      digest: digestOf('1'),
      activeSlot: 'a',
      agentVersion: '0.1.0',
    });
  }
  events.push({
    v: 1,
    id: id(),
    at: at(),
    type: 'RolloutStarted',
    rolloutId,
    spec: {
      id: rolloutId,
      image: { type: 'published', digest: digestOf('2') },
      version: '1.1.0',
      waves: '1,10%,100%',
      maxUnavailable: 50,
    },
  });
  events.push({ v: 1, id: id(), at: at(), type: 'TargetsResolved', rolloutId, nodeIds, skipped: [] });
  const waves = planWaves(nodeIds, [
    { type: 'count', count: 1 },
    { type: 'percent', percent: 10 },
    { type: 'percent', percent: 100 },
  ]);
  waves.forEach((wave, index) => {
    events.push({ v: 1, id: id(), at: at(), type: 'WaveStarted', rolloutId, wave: index, nodeIds: wave });
    for (const nodeId of wave) {
      const on = { nodeId, rolloutId, commandId: `${rolloutId}:${nodeId}:upgrade` };
      const image = digestOf('2');
      events.push(
        { v: 1, id: id(), at: at(), type: 'UpgradeCommandAccepted', ...on, command: 'Upgrade' },
        {
          v: 1,
          id: id(),
          at: at(),
          type: 'ArtifactFetched',
          ...on,
          digest: image,
          bytes: 1 << 30,
          source: 'p2p',
        },
        { v: 1, id: id(), at: at(), type: 'SlotWritten', ...on, slot: 'b', digest: image },
        { v: 1, id: id(), at: at(), type: 'TrialBootArmed', ...on, slot: 'b' },
        { v: 1, id: id(), at: at(), type: 'NodeRebooting', ...on, slot: 'b' },
        {
          v: 1,
          id: id(),
          at: at(),
          type: 'NodeBooted',
          ...on,
          slot: 'b',
          version: '1.1.0',
          digest: image,
          trial: true,
        },
        { v: 1, id: id(), at: at(), type: 'HealthCheckPassed', ...on, checks: ['booted-expected-slot'] },
        {
          v: 1,
          id: id(),
          at: at(),
          type: 'UpgradeCommitted',
          ...on,
          slot: 'b',
          version: '1.1.0',
          digest: image,
        },
        {
          v: 1,
          id: id(),
          at: at(),
          type: 'NodeUpgradeFinished',
          rolloutId,
          nodeId,
          wave: index,
          outcome: 'upgraded',
        },
      );
    }
    events.push({
      v: 1,
      id: id(),
      at: at(),
      type: 'WaveGatePassed',
      rolloutId,
      wave: index,
      succeeded: wave.length,
      failed: 0,
    });
  });
  events.push({
    v: 1,
    id: id(),
    at: at(),
    type: 'RolloutCompleted',
    rolloutId,
    outcome: 'succeeded',
    upgraded: nodes,
    failed: 0,
  });
  return events;
}
