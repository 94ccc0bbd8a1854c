// Public surface of slotflow's shared contracts: pure zod schemas and helpers, safe to import from
// workflows (no Node built-ins, no I/O).
export * from './artifact.ts';
export * from './canonical.ts';
export * from './commands.ts';
export * from './config.ts';
export * from './duration.ts';
export * from './errors.ts';
export * from './events.ts';
export * from './identity.ts';
export * from './ids.ts';
export * from './keyring.ts';
export * from './labels.ts';
export * from './p2p.ts';
export * from './rollout-spec.ts';
export * from './subjects.ts';
export * from './threshold.ts';
export * from './trust-checkpoint.ts';
export * from './trust-events.ts';
export * from './waves.ts';
export * from './version.ts';
