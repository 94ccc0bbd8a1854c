import type { P2pMetrics } from './p2p-link.ts';
import { createServer, type Server } from 'node:http';
import type { AgentState } from '../schema/index.ts';
import { AgentState as AgentStates } from '../schema/index.ts';

/** What the metrics endpoint reports, read at scrape time. */
export interface MetricsSnapshot {
  readonly nodeId: string;
  readonly state: AgentState;
  readonly version: string;
  readonly slot: string;
  readonly bytesWritten: number;
  readonly outbox: number;
  readonly commands: Readonly<Record<'accepted' | 'rejected', number>>;
  /** How the last operation ended (committed, fell-back, rolled-back, rejected, …). */
  readonly lastResult?: { readonly result: string; readonly at: string } | undefined;
  /** The peer-to-peer side, when it is on. */
  readonly p2p?: P2pMetrics;
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Pure: the Prometheus text exposition of a snapshot. */
export function renderMetrics(s: MetricsSnapshot): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  metric('slotflow_agent_info', 'gauge', 'The node and what it runs.', [
    [`{node_id="${esc(s.nodeId)}",version="${esc(s.version)}",slot="${esc(s.slot)}"}`, 1],
  ]);
  metric(
    'slotflow_agent_state',
    'gauge',
    'State of the upgrade state machine (1 for the current state).',
    AgentStates.options.map((st) => [`{state="${st}"}`, st === s.state ? 1 : 0]),
  );
  metric('slotflow_agent_bytes_written_total', 'counter', 'Bytes written to slots since the agent started.', [
    ['', s.bytesWritten],
  ]);
  metric('slotflow_agent_outbox_events', 'gauge', 'Events recorded but not yet acknowledged by NATS.', [
    ['', s.outbox],
  ]);
  metric('slotflow_agent_commands_total', 'counter', 'Commands handled since the agent started.', [
    ['{outcome="accepted"}', s.commands.accepted],
    ['{outcome="rejected"}', s.commands.rejected],
  ]);
  if (s.lastResult) {
    metric('slotflow_agent_last_result', 'gauge', 'How the last operation ended (1 for its result).', [
      [`{result="${esc(s.lastResult.result)}"}`, 1],
    ]);
    metric('slotflow_agent_last_result_timestamp_seconds', 'gauge', 'When the last operation ended.', [
      ['', Math.round(Date.parse(s.lastResult.at) / 1000)],
    ]);
  }
  if (s.p2p) {
    const p = s.p2p;
    metric('slotflow_agent_mode', 'gauge', 'Where commands and events flow (1 for the current mode).', [
      ['{mode="nats"}', p.mode === 'nats' ? 1 : 0],
      ['{mode="p2p"}', p.mode === 'p2p' ? 1 : 0],
    ]);
    metric('slotflow_p2p_peers', 'gauge', 'Connected peers.', [['', p.peers]]);
    metric(
      'slotflow_p2p_gossip_messages_total',
      'counter',
      'Gossip messages checked, by topic and verdict.',
      [
        ['{topic="commands",verdict="accepted"}', p.gossip.commands.accepted],
        ['{topic="commands",verdict="rejected"}', p.gossip.commands.rejected],
        ['{topic="events",verdict="accepted"}', p.gossip.events.accepted],
        ['{topic="events",verdict="rejected"}', p.gossip.events.rejected],
        ['{topic="lease",verdict="accepted"}', p.gossip.lease.accepted],
        ['{topic="lease",verdict="rejected"}', p.gossip.lease.rejected],
      ],
    );
    metric(
      'slotflow_p2p_peers_unenrolled_total',
      'counter',
      'Look-ups that found no valid enrolment certificate for a peer; what such a peer gossips is dropped.',
      [['', p.unenrolledPeers]],
    );
    metric('slotflow_p2p_events_relayed_total', 'counter', "Peers' events this node stored in JetStream.", [
      ['', p.relayed],
    ]);
    metric('slotflow_p2p_uploaded_bytes_total', 'counter', 'Image bytes served to peers.', [
      ['', p.uploadedBytes],
    ]);
  }
  return `${lines.join('\n')}\n`;
}

/** Serves GET /metrics on `listen` (host:port); resolves once listening. */
export async function startMetricsServer(listen: string, snapshot: () => MetricsSnapshot): Promise<Server> {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(listen.slice(colon + 1));
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
      res.writeHead(404).end('try /metrics\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(renderMetrics(snapshot()));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
