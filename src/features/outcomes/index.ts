/** Outcomes joined to the scores they followed (docs/outcomes.md): what the CLI, the report and a run use. */
export { syncOutcomes, readOutcomesManifest, type RunSync, type SyncOptions } from './syncOutcomes.js';
export { performanceGate, latestMaturePerformance, type LatestPerformance } from './performanceGate.js';
