// Public surface of the fleet and rollout projections: pure reducers, KV store and projector.
export * from './projector.ts';
export * from './reducer.ts';
export * from './store.ts';
export * from './views.ts';
