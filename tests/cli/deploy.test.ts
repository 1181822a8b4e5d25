import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { CronJob, Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { ServiceAccount } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { repoRoot, runCli } from '../helpers/cli.js';

/**
 * No cluster and no container engine here: the deployment files are checked for what can be checked
 * without one. Every Kubernetes manifest validates against the API's JSON schema (kubernetes-models),
 * every scorejob command and flag a manifest runs is a real one (its `--help` lists the flag), and
 * every path the Dockerfile copies exists.
 */
const k8sDir = join(repoRoot, 'deploy/kubernetes');
const kinds: Record<string, (o: unknown) => { validate(): void }> = {
  'batch/v1/CronJob': (o) => new CronJob(o as ConstructorParameters<typeof CronJob>[0]),
  'batch/v1/Job': (o) => new Job(o as ConstructorParameters<typeof Job>[0]),
  'v1/ServiceAccount': (o) => new ServiceAccount(o as ConstructorParameters<typeof ServiceAccount>[0]),
  'networking.k8s.io/v1/NetworkPolicy': (o) => new NetworkPolicy(o as ConstructorParameters<typeof NetworkPolicy>[0]),
};
const workloads = ['CronJob', 'Job'];

interface Manifest {
  file: string;
  doc: { apiVersion: string; kind: string; metadata: { name: string } } & Record<string, unknown>;
}

async function manifests(): Promise<Manifest[]> {
  const files = (await readdir(k8sDir)).filter((f) => /\.ya?ml$/.test(f));
  const out: Manifest[] = [];
  for (const file of files) {
    for (const d of parseAllDocuments(await readFile(join(k8sDir, file), 'utf8'))) {
      expect(d.errors, file).toEqual([]);
      const doc = d.toJS() as Manifest['doc'] | null;
      if (doc) out.push({ file, doc });
    }
  }
  return out;
}

/** The pod template's spec of a CronJob or a Job. */
function podSpec(doc: Manifest['doc']): Record<string, any> {
  const spec = doc.spec as Record<string, any>;
  return doc.kind === 'CronJob' ? spec.jobTemplate.spec.template.spec : spec.template.spec;
}

/** The containers (init containers first) of a CronJob's or a Job's pod template. */
function containers(
  doc: Manifest['doc'],
): { name: string; image: string; args?: string[]; command?: string[]; volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[] }[] {
  const pod = podSpec(doc);
  return [...(pod.initContainers ?? []), ...pod.containers];
}

describe('deployment files', () => {
  it('every Kubernetes manifest is valid against the API schema', async () => {
    const all = await manifests();
    expect(all.length).toBeGreaterThan(0);
    for (const { file, doc } of all) {
      const make = kinds[`${doc.apiVersion}/${doc.kind}`];
      expect(make, `${file}: ${doc.apiVersion} ${doc.kind} has no validator here`).toBeDefined();
      expect(() => make!(doc).validate(), `${file}: ${doc.kind} ${doc.metadata.name}`).not.toThrow();
    }
  });

  it('a manifest that breaks the schema is refused (the validation can fail)', async () => {
    const { doc } = (await manifests()).find((m) => m.doc.kind === 'CronJob')!;
    const broken = structuredClone(doc) as any;
    broken.spec.concurrencyPolicy = 7;
    expect(() => new CronJob(broken).validate()).toThrow();
  });

  it('runs non-root, read-only, with limits, one run at a time', async () => {
    for (const { file, doc } of (await manifests()).filter((m) => workloads.includes(m.doc.kind))) {
      if (doc.kind === 'CronJob') {
        expect((doc.spec as any).concurrencyPolicy, file).toBe('Forbid');
        expect((doc.spec as any).startingDeadlineSeconds, file).toBeGreaterThan(0);
      }
      const pod = doc.kind === 'CronJob' ? (doc.spec as any).jobTemplate.spec.template.spec : (doc.spec as any).template.spec;
      expect(pod.securityContext.runAsNonRoot, file).toBe(true);
      expect(pod.terminationGracePeriodSeconds, file).toBeGreaterThanOrEqual(30);
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        expect(c.securityContext.readOnlyRootFilesystem, file).toBe(true);
        expect(c.securityContext.capabilities.drop, file).toEqual(['ALL']);
        expect(c.resources.limits.memory, file).toBeDefined();
        expect(c.envFrom?.[0]?.secretRef?.name ?? c.env?.find((e: any) => e.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef, file).toBeDefined();
      }
    }
  });

  it('every scorejob command and flag a manifest runs exists (its --help lists it)', async () => {
    for (const { file, doc } of (await manifests()).filter((m) => workloads.includes(m.doc.kind))) {
      for (const c of containers(doc)) {
        const args = c.args ?? [];
        // Global flags come before the command; the command is the first argument that is not a flag.
        const globals = ['--no-pretty', '--pretty'];
        const command = args.find((a) => !a.startsWith('-'));
        expect(command, `${file}: ${c.name} runs no command`).toBeDefined();
        const help = await runCli([command as string, '--help']);
        expect(help.code, `${file}: scorejob ${command} --help\n${help.stderr}`).toBe(0);
        const after = args.slice(args.indexOf(command as string) + 1);
        for (const flag of after.filter((a) => a.startsWith('--'))) {
          expect(help.stdout, `${file}: scorejob ${command} has no ${flag}`).toContain(flag.split('=')[0]);
        }
        for (const flag of args.slice(0, args.indexOf(command as string))) expect(globals, `${file}: global flag ${flag}`).toContain(flag);
      }
    }
  });

  it('one CronJob whose Job runs N pods of one command: migrate first, then run --if-due --join; no separate workers Job', async () => {
    const all = await manifests();
    const jobs = all.filter((m) => workloads.includes(m.doc.kind));
    expect(jobs.map((m) => m.doc.kind)).toEqual(['CronJob']);
    const cron = jobs[0]!.doc;
    const job = (cron.spec as any).jobTemplate.spec;
    expect(job.parallelism).toBeGreaterThan(1);
    expect(job.completionMode).toBe('NonIndexed');
    expect(job.completions).toBeUndefined();
    // A Job cut short by its deadline is resumed by the next firing (tests/cli/tickResume.test.ts).
    expect(job.activeDeadlineSeconds).toBeGreaterThan(0);
    expect(job.backoffLimit).toBeGreaterThan(0);
    expect(job.podFailurePolicy.rules.find((r: any) => r.action === 'FailJob').onExitCodes.values).toEqual([1, 2]);
    const pod = podSpec(cron);
    expect(pod.initContainers.map((c: any) => c.args)).toEqual([['--no-pretty', 'migrate']]);
    expect(pod.containers).toHaveLength(1);
    const args: string[] = pod.containers[0].args;
    expect(args.slice(0, 2)).toEqual(['--no-pretty', 'run']);
    for (const flag of ['--if-due', '--join', '--metrics-push', '--model']) expect(args, flag).toContain(flag);
    // The model from a read-only volume mounted where --model points.
    const modelDir = args[args.indexOf('--model') + 1] as string;
    const mount = pod.containers[0].volumeMounts.find((m: any) => modelDir.startsWith(`${m.mountPath}/`));
    expect(mount, `no volume mounted above ${modelDir}`).toMatchObject({ name: 'models', readOnly: true });
    expect(pod.volumes.find((v: any) => v.name === 'models').persistentVolumeClaim.readOnly).toBe(true);
  });

  it('platform hardening: no API token, a ServiceAccount, egress to the database only (and DNS, the Pushgateway), images pinned by digest', async () => {
    const all = await manifests();
    const sa = all.find((m) => m.doc.kind === 'ServiceAccount')!.doc as any;
    expect(sa.automountServiceAccountToken).toBe(false);
    const cron = all.find((m) => m.doc.kind === 'CronJob')!.doc;
    const pod = podSpec(cron);
    expect(pod.serviceAccountName).toBe(sa.metadata.name);
    expect(pod.automountServiceAccountToken).toBe(false);
    for (const c of containers(cron)) expect(c.image, c.name).toMatch(/@sha256:[0-9a-f]{64}$/);
    const np = all.find((m) => m.doc.kind === 'NetworkPolicy')!.doc as any;
    const labels = (cron.spec as any).jobTemplate.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(np.spec.podSelector.matchLabels)) expect(labels[k], `pods carry ${k}`).toBe(v);
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(np.spec.ingress).toEqual([]);
    const ports = np.spec.egress.flatMap((e: any) => e.ports.map((p: any) => `${p.protocol}/${p.port}`)).sort();
    expect(ports).toEqual(['TCP/53', 'TCP/5432', 'TCP/9091', 'UDP/53']);
  });

  it('the Kubernetes alert rules pass promtool and alert on the metrics scorejob pushes', async (ctx) => {
    const file = join(repoRoot, 'deploy/prometheus/scorejob-kubernetes.rules.yml');
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    if (r.error) ctx.skip('promtool is not installed (Debian: apt-get install prometheus; tests/system/metricsPush.test.ts installs it)');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const text = await readFile(file, 'utf8');
    const { renderMetrics } = await import('../../src/observe/metrics.js');
    const names = new Set(
      [
        ...(
          await renderMetrics({
            model: 'm',
            runId: '1',
            status: 'failed',
            errorKind: 'gate',
            published: false,
            dryRun: false,
            forced: false,
            durationMs: 1,
            rowsScored: 1,
            rowsRejected: 0,
            psi: 0.1,
            finishedAt: new Date(),
            lastSuccessAt: new Date(),
          })
        ).matchAll(/^# TYPE (\S+)/gm),
      ].map((m) => m[1]),
    );
    const used = [...text.matchAll(/\b(scorejob_[a-z_]+)\b/g)].map((m) => m[1]);
    expect(used.length).toBeGreaterThan(5);
    for (const n of used) expect(names, `${n} is not a metric scorejob exports`).toContain(n);
  });

  it('every path the Dockerfile copies from the context exists, and .dockerignore lets it in', async () => {
    const dockerfile = await readFile(join(repoRoot, 'Dockerfile'), 'utf8');
    const ignore = (await readFile(join(repoRoot, '.dockerignore'), 'utf8'))
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    const copies = [...dockerfile.matchAll(/^COPY\s+(?!--from)(.+)$/gm)].map((m) => (m[1] as string).trim().split(/\s+/).slice(0, -1)).flat();
    expect(copies.length).toBeGreaterThan(5);
    for (const path of copies) {
      expect(existsSync(join(repoRoot, path)), `Dockerfile copies ${path}`).toBe(true);
      expect(ignore, `.dockerignore keeps ${path} out of the context`).toContain(path.replace(/\/$/, ''));
    }
    expect(dockerfile).toMatch(/npm ci --omit=dev --omit=optional/);
    expect(dockerfile).toMatch(/^USER node$/m);
  });
});
