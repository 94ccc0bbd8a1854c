// Public surface of node trust: the trust reducer (enrolment and signed node events), its
// anti-replay window, the bridge's gate, rejection records and enrolment.
export * from './checkpoint.ts';
export * from './gate.ts';
export * from './reducer.ts';
export * from './rejections.ts';
export * from './replay-window.ts';
export * from './control-plane-keys.ts';
export * from './enrolment.ts';
