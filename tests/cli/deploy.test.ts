import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CronJob, Job } from 'kubernetes-models/batch/v1';
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
};

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

/** The containers of a CronJob's or a Job's pod template. */
function containers(doc: Manifest['doc']): { name: string; args?: string[]; command?: string[] }[] {
  const spec = doc.spec as Record<string, any>;
  const pod = doc.kind === 'CronJob' ? spec.jobTemplate.spec.template.spec : spec.template.spec;
  return pod.containers;
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
    for (const { file, doc } of await manifests()) {
      if (doc.kind === 'CronJob') {
        expect((doc.spec as any).concurrencyPolicy, file).toBe('Forbid');
        expect((doc.spec as any).startingDeadlineSeconds, file).toBeGreaterThan(0);
      }
      const pod = doc.kind === 'CronJob' ? (doc.spec as any).jobTemplate.spec.template.spec : (doc.spec as any).template.spec;
      expect(pod.securityContext.runAsNonRoot, file).toBe(true);
      expect(pod.terminationGracePeriodSeconds, file).toBeGreaterThanOrEqual(30);
      for (const c of pod.containers) {
        expect(c.securityContext.readOnlyRootFilesystem, file).toBe(true);
        expect(c.resources.limits.memory, file).toBeDefined();
        expect(c.envFrom?.[0]?.secretRef?.name ?? c.env?.find((e: any) => e.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef, file).toBeDefined();
      }
    }
  });

  it('every scorejob command and flag a manifest runs exists (its --help lists it)', async () => {
    for (const { file, doc } of await manifests()) {
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

  it('the workers Job is a work queue of `scorejob work` joining the coordinator\'s shared run', async () => {
    const all = await manifests();
    const workers = all.find((m) => m.doc.kind === 'Job' && (m.doc.metadata as any).labels?.['app.kubernetes.io/component'] === 'worker');
    expect(workers).toBeDefined();
    const spec = workers!.doc.spec as any;
    expect(spec.parallelism).toBeGreaterThan(1);
    expect(spec.completionMode).toBe('NonIndexed');
    expect(spec.completions).toBeUndefined();
    expect(containers(workers!.doc)[0]?.args).toContain('work');
    const coordinator = all.find((m) => m.doc.kind === 'CronJob')!;
    expect(containers(coordinator.doc)[0]?.args).toContain('--workers');
  });

  it('every path the Dockerfile copies from the context exists, and .dockerignore lets it in', async () => {
    const dockerfile = await readFile(join(repoRoot, 'Dockerfile'), 'utf8');
    const ignore = (await readFile(join(repoRoot, '.dockerignore'), 'utf8')).split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
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
