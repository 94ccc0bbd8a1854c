import { readRecord } from '../stack/state.ts';
import { defaultStackDir } from '../stack/paths.ts';
import type { ConnectionConfig } from '../schema/index.ts';

/**
 * Base URL of the Temporal Web UI: SLOTFLOW_UI_URL, else the local stack's UI when the client
 * talks to that stack, else undefined (a cluster's UI address is not derivable).
 */
export async function temporalUiBase(config: ConnectionConfig): Promise<string | undefined> {
  const explicit = process.env['SLOTFLOW_UI_URL'];
  if (explicit) return explicit.replace(/\/+$/, '');
  try {
    const record = await readRecord(defaultStackDir());
    if (record && `${record.temporal.host}:${record.temporal.port}` === config.temporal.address) {
      return `http://${record.temporal.host}:${record.temporal.uiPort}`;
    }
  } catch {
    // no readable stack record: no UI link
  }
  return undefined;
}

/** Link to one workflow execution (one run) in the Temporal UI. */
export function workflowUrl(base: string, namespace: string, workflowId: string, runId: string): string {
  return `${base}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}`;
}

/** Link to the UI's workflow list filtered to one rollout (the rollout and its node workflows). */
export function rolloutSearchUrl(base: string, namespace: string, rolloutId: string): string {
  return `${base}/namespaces/${encodeURIComponent(namespace)}/workflows?query=${encodeURIComponent(`RolloutId="${rolloutId}"`)}`;
}
