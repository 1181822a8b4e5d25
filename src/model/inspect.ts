import type { BackendChoice } from '../config.js';
import type { FeaturePlan, PlannedFeature } from './features.js';
import { loadModel, type LoadedModel } from './load.js';
import { unknownId, type Manifest } from './manifest.js';
import type { ModelFile } from './modelFiles.js';
import { formatBytes, table } from '../format.js';

/** What `scorejob model inspect` shows about a model directory. */
export interface ModelReport {
  dir: string;
  manifest: Manifest;
  plan: FeaturePlan;
  inputWidth: number;
  output: LoadedModel['output'];
  files: ModelFile[];
  /** Fingerprint of all files, as recorded on runs. */
  sha256: string;
  /** The backend scoring would run on with the given choice. */
  backend: string;
  format: LoadedModel['format'];
  execution: LoadedModel['execution'];
  /** The model's inputs and the features' columns each takes. */
  inputs: LoadedModel['inputs'];
  outputName: string;
}

/**
 * The source check as {@link formatModelReport} needs it: `SourceColumnCheck` from db/sourceColumns.ts
 * fits, without model/ depending on db/.
 */
export interface SourceColumnsSummary {
  table: string;
  relation: string | undefined;
  relkind: string | undefined;
  key: { name: string; type: string | undefined; ok: boolean; unique: string; nullKeys?: number | undefined };
  columns: readonly { name: string; type: string | undefined; ok: boolean }[];
  problems: readonly string[];
  notes: readonly string[];
}

/** Loads the model exactly as a run would (same checks, same backend choice), reports, and frees it. */
export async function inspectModel(dir: string, opts: { backend: BackendChoice }): Promise<ModelReport> {
  // A draft is what inspect is for: reviewing it (the report says it is one).
  const model = await loadModel(dir, { backend: opts.backend, allowDraft: true });
  try {
    const { manifest, plan, inputWidth, output, files, sha256, backend, format, execution, inputs, outputName } = model;
    return { dir, manifest, plan, inputWidth, output, files, sha256, backend, format, execution, inputs, outputName };
  } finally {
    model.dispose();
  }
}

/** The report as terminal text (plain, aligned, no colour); with `columns`, the source check too. */
export function formatModelReport(report: ModelReport, columns?: SourceColumnsSummary): string {
  const { manifest: m, output } = report;
  const lines: string[] = [`model    ${m.name} ${m.version}  (${report.dir})`];
  if (m.draft) lines.push(`draft    yes: nobody has reviewed this manifest; scorejob run refuses it (except --dry-run) until "draft": true is deleted from it`);
  if (m.description !== '') lines.push(`         ${m.description}`);
  lines.push(`source   ${m.source.table}, key ${m.source.key}`);
  lines.push(`format   ${report.format} (${report.execution})`);
  lines.push(`input    ${report.inputWidth} floats per row, from ${m.features.length} features`);
  if (report.inputs.length > 1 || report.inputs.some((i) => i.dtype !== 'float32')) {
    for (const i of report.inputs)
      lines.push(`         ${i.name}: ${i.dtype} [rows${i.rank === 2 ? `, ${i.width}` : ''}] <- row inputs ${Array.from(i.columns).join(', ')}`);
  }
  const unit = output.totalUnits > 1 ? ` (unit ${m.output.unit ?? 0} of ${output.totalUnits})` : '';
  const from = m.output.from !== undefined || output.totalUnits > 1 ? ` from output "${report.outputName}"` : '';
  lines.push(`output   ${m.output.name}${from}${unit}${m.output.description === '' ? '' : `: ${m.output.description}`}`);
  if (m.segments) lines.push(`segments ${m.segments.join(', ')} (each value's scores watched per run)`);
  lines.push(`backend  ${report.backend}`, '', 'features (model input order)');
  lines.push(...table([['inputs', 'column', 'transform', 'details'], ...report.plan.features.map(featureRow)], { indent: '  ' }));
  lines.push('', 'files');
  const fileRows = report.files.map((f) => [f.name, formatBytes(f.bytes), `sha256 ${f.sha256}`]);
  lines.push(...table([...fileRows, ['all', '', `sha256 ${report.sha256}`]], { indent: '  ' }));
  lines.push(`  (all = sha256sum ${report.files.map((f) => f.name).join(' ')} | sha256sum)`);
  if (m.training !== undefined) {
    lines.push('', 'training');
    for (const [k, v] of Object.entries(m.training)) lines.push(`  ${k}: ${clip(JSON.stringify(v), 100)}`);
  }
  if (columns !== undefined) lines.push('', ...formatColumns(columns));
  return `${lines.join('\n')}\n`;
}

function featureRow(p: PlannedFeature): string[] {
  const f = p.feature;
  const inputs = p.inputs === 1 ? String(p.offset) : `${p.offset}-${p.offset + p.inputs - 1}`;
  const fill = f.fill === undefined ? 'NULL rejects the row' : `NULL -> ${String(f.fill)}`;
  let details: string;
  switch (f.transform) {
    case 'standardize': {
      const range = f.min !== undefined || f.max !== undefined ? `, training range [${f.min ?? '-inf'}, ${f.max ?? 'inf'}]` : '';
      details = `mean ${f.mean}, std ${f.std}${range}`;
      break;
    }
    case 'one_hot':
      details = clip(f.categories.join(', '), 60);
      break;
    case 'boolean':
      details = 'true -> 1, false -> 0';
      break;
    case 'raw':
      details = f.min !== undefined || f.max !== undefined ? `as stored, training range [${f.min ?? '-inf'}, ${f.max ?? 'inf'}]` : 'as stored';
      break;
    case 'index':
      details = `${clip(f.categories.map((c, i) => `${c}=${i}`).join(', '), 60)}; unknown -> ${unknownId(f)}`;
      break;
  }
  return [inputs, f.column, f.transform, `${details}; ${fill}`];
}

function formatColumns(c: SourceColumnsSummary): string[] {
  const where = c.relation === undefined ? c.table : `${c.relation}${c.relkind === undefined ? '' : `, ${c.relkind}`}`;
  const lines = [`source check (${where})`];
  if (c.relation !== undefined) {
    const mark = (ok: boolean) => (ok ? 'ok' : '--');
    const nulls = c.key.nullKeys === undefined ? '' : `, NULL keys: ${c.key.nullKeys}`;
    const rows = [
      [mark(c.key.ok && c.key.unique !== 'no' && !c.key.nullKeys), `${c.key.name} (key)`, c.key.type ?? 'missing', `unique: ${c.key.unique}${nulls}`],
    ];
    for (const col of c.columns) rows.push([mark(col.ok), col.name, col.type ?? 'missing', '']);
    lines.push(...table(rows, { indent: '  ' }));
  }
  for (const p of c.problems) lines.push(`  problem: ${p}`);
  for (const n of c.notes) lines.push(`  note: ${n}`);
  if (c.problems.length === 0) lines.push('  the source has every column the model needs');
  return lines;
}

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
