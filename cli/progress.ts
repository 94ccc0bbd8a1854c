import Table from 'cli-table3';
import { createLogUpdate } from 'log-update';
import type { RolloutStatusView } from '../workflows/definitions.ts';

const FINAL = new Set(['succeeded', 'failed', 'aborted', 'rolled-back']);

/** True once a rollout status is final. */
export function isFinal(status: RolloutStatusView['status']): boolean {
  return FINAL.has(status);
}

/** A rollout's status as a table: one row per wave, node states grouped by outcome. */
export function renderStatus(view: RolloutStatusView, uiUrl?: string): string {
  const head = [
    `rollout ${view.rolloutId}: ${view.status}${view.waitingFor ? ` (waiting for ${view.waitingFor})` : ''}`,
    `version ${view.version}${view.imageDigest ? `  image ${view.imageDigest.slice(0, 19)}…` : ''}`,
    `nodes: ${view.counts.upgraded} upgraded, ${view.counts.running} running, ${view.counts.pending} pending, ${view.counts.failed} failed, ${view.counts.skipped} skipped`,
  ];
  if (view.pauseReason) head.push(`reason: ${view.pauseReason}`);
  const table = new Table({ head: ['wave', 'status', 'nodes', 'progress'], style: { head: [], border: [] } });
  for (const wave of view.waves) {
    const states = wave.nodeIds.map((id) => `${id}:${view.nodes[id]?.state ?? '?'}`);
    const shown = states.length > 8 ? [...states.slice(0, 8), `… ${states.length - 8} more`] : states;
    table.push([
      String(wave.index + 1),
      wave.status,
      String(wave.nodeIds.length),
      `${wave.succeeded} ok, ${wave.failed} failed\n${shown.join(' ')}`,
    ]);
  }
  const lines = [...head];
  if (view.waves.length > 0) lines.push(table.toString());
  if (uiUrl) lines.push(`Temporal UI: ${uiUrl}`);
  return lines.join('\n');
}

/** Redraws the status in place on a terminal; prints each change on its own lines otherwise. */
export function createStatusPrinter(stream: NodeJS.WriteStream = process.stdout) {
  const live = stream.isTTY ? createLogUpdate(stream) : undefined;
  let last = '';
  return {
    show(text: string) {
      if (text === last) return;
      last = text;
      if (live) live(text);
      else stream.write(`${text}\n\n`);
    },
    done() {
      live?.done();
    },
  };
}
