// Every workflow the slotflow worker hosts; bundled into Temporal's deterministic sandbox.
export { imageBuildWorkflow } from './image-build.ts';
export { nodeUpgradeWorkflow } from './node-upgrade.ts';
export { rolloutWorkflow } from './rollout.ts';
