// A node's side of an upgrade, told in events: what an agent publishes (or its outbox flushes
// once NATS is back) while it follows an Upgrade command or a signed plan.
import type { DomainEventInput } from '../../schema/index.ts';
import { commandIdFor } from '../../workflows/definitions.ts';

/** Every event of a successful upgrade of `nodeId` in `rolloutId`, in the order a node emits them. */
export function upgradeEvents(
  rolloutId: string,
  nodeId: string,
  { version, digest, at = Date.now() }: { version: string; digest: string; at?: number },
): DomainEventInput[] {
  const commandId = commandIdFor(rolloutId, nodeId, 'upgrade');
  const on = { nodeId, rolloutId, commandId };
  let n = 0;
  const step = (type: string, body: Record<string, unknown>) =>
    ({
      v: 1,
      id: `${nodeId}.${rolloutId}.upgrade.${type}`,
      at: new Date(at + n++).toISOString(),
      type,
      ...on,
      ...body,
    }) as DomainEventInput;
  return [
    step('UpgradeCommandAccepted', { command: 'Upgrade' }),
    step('ArtifactFetched', { digest, bytes: 4096, source: 'peers' }),
    step('SlotWritten', { slot: 'b', digest }),
    step('TrialBootArmed', { slot: 'b' }),
    step('NodeRebooting', { slot: 'b' }),
    step('NodeBooted', { slot: 'b', version, trial: true }),
    step('HealthCheckPassed', { checks: ['booted-expected-slot'] }),
    step('UpgradeCommitted', { slot: 'b', version, digest }),
  ];
}
