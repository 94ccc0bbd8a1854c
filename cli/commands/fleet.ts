import Table from 'cli-table3';
import { openEventLog } from '../../eventlog/index.ts';
import { catchUp, loadProjection, openProjectionBucket, type NodeView } from '../../projection/index.ts';
import { KeyError, type TrustedKeys } from '../../signing/index.ts';
import { controlPlaneTrustedKeys } from '../../trust/index.ts';
import { parseFlags, type Command } from '../command.ts';
import { cliConfig, printJson, withNats } from '../context.ts';

const usage = 'slotflow fleet [--json]';

/** `slotflow fleet`: every known node from the projection, brought up to the newest event. */
export const fleet: Command = {
  path: ['fleet'],
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, { json: { type: 'boolean' } }, usage);
    const config = cliConfig();
    // Without a control-plane key no enrolment can be checked: every node shows as not enrolled.
    const trustedKeys = await controlPlaneTrustedKeys(config.home, { retired: true }).catch(
      (err: unknown) => {
        if (!(err instanceof KeyError)) throw err;
        process.stderr.write(`slotflow: ${err.message}; no node can be shown as enrolled\n`);
        return new Map() as TrustedKeys;
      },
    );
    const projection = await withNats(config, async (nc) => {
      const log = await openEventLog(nc);
      const kv = await openProjectionBucket(nc);
      // The stored projection may lag if no projector runs; the log is the truth, so catch up.
      return catchUp(await loadProjection(kv), log, { trustedKeys });
    });
    const nodes = [...projection.nodes.values()].sort((a, b) => a.nodeId.localeCompare(b.nodeId));
    if (values.json) {
      printJson({ lastSeq: projection.lastSeq, nodes });
      return 0;
    }
    if (nodes.length === 0) {
      process.stdout.write(
        'no nodes have registered yet; start an agent with `slotflow agent --node-id ID --data-dir DIR`\n',
      );
      return 0;
    }
    const table = new Table({
      head: ['node', 'version', 'slot', 'state', 'mode', 'last seen', 'rollout', 'labels'],
      style: { head: process.stdout.isTTY ? ['cyan'] : [], border: process.stdout.isTTY ? ['grey'] : [] },
    });
    for (const n of nodes) table.push(row(n));
    process.stdout.write(
      `${table.toString()}\n${nodes.length} node(s), event log at sequence ${projection.lastSeq}\n`,
    );
    return 0;
  },
};

function row(n: NodeView): string[] {
  return [
    n.nodeId,
    n.version,
    n.activeSlot,
    n.state,
    n.mode,
    n.lastSeenAt,
    n.rollout ? `${n.rollout.rolloutId} ${n.rollout.phase}` : '-',
    Object.entries(n.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
  ];
}
