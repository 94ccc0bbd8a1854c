// The receiving end of the bridge benchmark: a workflow that takes every node signal the event
// bridge sends, as a node workflow does, and ends once it has the node's events. Bundled only
// into the bench's own worker (bench/bridge.ts), never the product's.
import { condition, setHandler } from '@temporalio/workflow';
import { NODE_SIGNAL_TYPES, nodeEventSignal } from '../../workflows/definitions.ts';

/** Collects node events by id until `expected` distinct ones came; returns how many. */
export async function signalSinkWorkflow(expected: number): Promise<number> {
  const seen = new Set<string>();
  for (const type of NODE_SIGNAL_TYPES) setHandler(nodeEventSignal(type), (event) => void seen.add(event.id));
  await condition(() => seen.size >= expected);
  return seen.size;
}
