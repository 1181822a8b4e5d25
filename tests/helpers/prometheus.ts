/**
 * A small parser of the Prometheus text exposition format (version 0.0.4), strict enough to catch what
 * node_exporter's textfile collector would refuse: every line a comment, a HELP/TYPE line or a sample;
 * names and labels well-formed; values floats; one TYPE per family, before its samples; samples of a
 * family together; a final newline. Kept rather than replaced by a parser package: the published parsers
 * (e.g. parse-prometheus-text-format) are lenient by design, and the point here is to refuse what the
 * collector refuses; they would also not check the ordering rules above.
 */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFile {
  samples: PromSample[];
  types: Map<string, string>;
  help: Map<string, string>;
  /** The value of the one sample `name{labels}`; undefined if absent. */
  get(name: string, labels?: Record<string, string>): number | undefined;
}

const name = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const labelName = '[a-zA-Z_][a-zA-Z0-9_]*';
const labelValue = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const float = '[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|NaN|[-+]?Inf';
const sampleRe = new RegExp(`^(${name})(?:\\{((?:${labelName}=${labelValue})(?:,${labelName}=${labelValue})*,?)?\\})?[ \\t]+(${float})(?:[ \\t]+-?\\d+)?$`);
const labelRe = new RegExp(`(${labelName})=(${labelValue})`, 'g');

export function parsePrometheus(text: string): PromFile {
  if (!text.endsWith('\n')) throw new Error('the file does not end with a newline');
  const samples: PromSample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const seenFamilies: string[] = [];
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const where = `line ${i + 1} ("${line}")`;
      if (line.trim() === '') return;
      if (line.startsWith('#')) {
        const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
        if (!m) return; // a plain comment
        const [, kind, metric, rest] = m as unknown as [string, string, string, string];
        if (!new RegExp(`^${name}$`).test(metric)) throw new Error(`${where}: bad metric name`);
        if (kind === 'TYPE') {
          if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`${where}: bad type`);
          if (types.has(metric)) throw new Error(`${where}: second TYPE for ${metric}`);
          if (samples.some((s) => s.name === metric)) throw new Error(`${where}: TYPE after samples of ${metric}`);
          types.set(metric, rest);
        } else {
          if (help.has(metric)) throw new Error(`${where}: second HELP for ${metric}`);
          help.set(metric, rest);
        }
        return;
      }
      const m = sampleRe.exec(line);
      if (!m) throw new Error(`${where}: not a sample line`);
      const labels: Record<string, string> = {};
      for (const l of (m[2] ?? '').matchAll(labelRe)) {
        const key = l[1] as string;
        if (key in labels) throw new Error(`${where}: label ${key} twice`);
        labels[key] = (l[2] as string).slice(1, -1).replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      }
      const metric = m[1] as string;
      if (seenFamilies.includes(metric) && seenFamilies.at(-1) !== metric) throw new Error(`${where}: samples of ${metric} are not together`);
      if (seenFamilies.at(-1) !== metric) seenFamilies.push(metric);
      const raw = m[3] as string;
      const value = raw === 'NaN' ? NaN : /Inf$/.test(raw) ? (raw.startsWith('-') ? -Infinity : Infinity) : Number(raw);
      samples.push({ name: metric, labels, value });
    });
  return {
    samples,
    types,
    help,
    get(metric, labels = {}) {
      // Every sample carries the run's `model`; a lookup that does not name one means any model.
      const keys = (l: Record<string, string>) => Object.keys(l).filter((k) => k !== 'model' || 'model' in labels).length;
      const found = samples.filter(
        (s) => s.name === metric && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && keys(s.labels) === Object.keys(labels).length,
      );
      if (found.length > 1) throw new Error(`${metric} has ${found.length} samples with these labels`);
      return found[0]?.value;
    },
  };
}
