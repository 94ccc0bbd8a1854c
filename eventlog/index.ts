// Public surface of the event log: SLOTFLOW_EVENTS / SLOTFLOW_COMMANDS streams, append and replay.
export * from './event-log.ts';
export * from './streams.ts';
