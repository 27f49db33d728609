import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRandom, type PolicyRegistry, resolveFamilyOptions } from '@piflow/core';
import { imageDatasetNames, loadImageDataset } from '@piflow/datasets';
import { type DigitMetrics, digitFeaturesAsync, digitMetricsAsync, teacherAlignment } from '@piflow/eval';
import { isFlowModel, type ModelManifest, type StoredModel } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { Command, Option } from 'commander';
import { loadClassifier } from '../classifier-files';
import { loadAnyModel, selectBackend, shippedModelsDir } from '../context';
import { UsageError } from '../errors';
import { collectPairs } from '../families';
import { writeImagePanels } from '../images';
import { applyConfigFile, commandLine, integer, integerList, number } from '../options';
import { sampleModel } from '../sampling';

/** The shipped MNIST students, in the order of the results table. */
const SHIPPED_STUDENTS = ['gm-1', 'gm-2', 'gm-4', 'dx-4', 'x0-4'];

export interface MnistRow {
  sampler: string;
  steps: number;
  /** Network evaluations per image (a CFG teacher step evaluates the network twice, batched). */
  nfe: number;
  frechetDistance: number;
  accuracy: number;
  diversity: number;
  /** k-NN precision and recall of the classifier features against held-out real digits'. */
  precision: number;
  recall: number;
  /** Kernel Inception Distance of the classifier features. */
  kid: number;
  /** Inception-Score form of the classifier's predictions (10 = confident and balanced). */
  classScore: number;
  /** RMS over images of the pixel-space L2 distance to the reference teacher's image from the same noise. */
  alignment: number;
  /** Wall time to generate 100 images on the active backend (milliseconds). */
  msPer100: number;
}

function sampleMetrics(m: DigitMetrics) {
  const { frechetDistance, accuracy, diversity, precision, recall, kid, classScore } = m;
  return { frechetDistance, accuracy, diversity, precision, recall, kid, classScore };
}

export function formatMnistTable(rows: MnistRow[], referenceSteps = 64): string {
  const lines = [
    `| sampler | steps | network evals / image | Fréchet distance ↓ | KID ↓ | precision | recall | class accuracy | class score | diversity | alignment to teacher-${referenceSteps} ↓ | ms / 100 images |`,
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const fmt = (x: number, digits: number) => (Number.isNaN(x) ? '—' : x.toFixed(digits));
  for (const r of rows) {
    lines.push(
      `| ${r.sampler} | ${r.steps || '—'} | ${r.nfe || '—'} | ${fmt(r.frechetDistance, 3)} | ${fmt(r.kid, 3)} | ${fmt(r.precision, 3)} | ${fmt(r.recall, 3)} | ${fmt(100 * r.accuracy, 1)} % | ${fmt(r.classScore, 2)} | ${fmt(r.diversity, 3)} | ${fmt(r.alignment, 2)} | ${r.msPer100 ? r.msPer100.toFixed(0) : '—'} |`,
    );
  }
  return lines.join('\n');
}

/** Samples `noise` (in chunks of 100) with labels; returns the images and the total seconds. */
async function generate(
  model: StoredModel,
  manifest: ModelManifest,
  noise: Float32Array,
  labels: Int32Array,
  options: { teacherSteps?: number; guidanceScale?: number; families?: PolicyRegistry },
): Promise<{ images: Float32Array; seconds: number; nfe: number }> {
  const pixels = 784;
  const count = labels.length;
  const images = new Float32Array(count * pixels);
  let seconds = 0;
  let nfe = 0;
  for (let start = 0; start < count; start += 100) {
    const n = Math.min(100, count - start);
    const chunk = tf.tensor4d(noise.subarray(start * pixels, (start + n) * pixels), [n, 28, 28, 1]);
    const result = await sampleModel(model, manifest, chunk, {
      ...(options.teacherSteps ? { teacherSteps: options.teacherSteps } : {}),
      ...(options.guidanceScale !== undefined ? { guidanceScale: options.guidanceScale } : {}),
      ...(options.families ? { families: options.families } : {}),
      labels: Array.from(labels.subarray(start, start + n)),
    });
    images.set(await result.x.data(), start * pixels);
    seconds += result.seconds;
    nfe = result.nfe;
    tf.dispose([chunk, result.x]);
  }
  return { images, seconds, nfe };
}

export function evalMnistCommand(): Command {
  return new Command('eval-mnist')
    .description(
      'The MNIST results table: teacher Euler at several step counts and each student, from the same noise and labels — Fréchet distance on classifier features, class accuracy, per-class diversity, teacher alignment, time.',
    )
    .addOption(
      new Option(
        '--data <name>',
        "labelled image set of the reference images and real rows (default: the teacher's, else mnist)",
      ).choices([...imageDatasetNames]),
    )
    .option(
      '--teacher <spec>',
      'class-conditional teacher: mnist / fashion-mnist (shipped) or a folder (default: the shipped one of --data)',
    )
    .option(
      '--students <list>',
      'comma-separated student folders (default: the shipped students of the data set)',
      (v: string) => v.split(',').filter(Boolean),
    )
    .option(
      '--teacher-steps <list>',
      'Euler step counts of the teacher rows',
      integerList('--teacher-steps'),
      [1, 2, 4, 8, 16, 32, 64],
    )
    .option('--reference-steps <n>', 'teacher steps for alignment', integer('--reference-steps', 1), 64)
    .option(
      '--guidance-scale <x>',
      "classifier-free guidance of the teacher rows (default: the teacher's recorded scale); students run with the guidance distilled into them",
      number('--guidance-scale', 1),
    )
    .option(
      '--classifier <spec>',
      'mnist / fashion-mnist (shipped) or a folder from train-classifier (default: the shipped one of the data set)',
    )
    .option('-n, --count <n>', 'images per row (labels 0–9 cycled)', integer('--count', 10), 500)
    .option('--seed <n>', 'noise seed', integer('--seed', 0), 0)
    .option('--grid <n>', 'images per panel in the side-by-side grid', integer('--grid', 10), 30)
    .option('--out <dir>', 'output folder (results.md, results.json, grids.png)', 'runs/mnist-eval')
    .option('--plugin <package or path>', 'load a policy-family plugin package (repeatable)', collectPairs)
    .addHelpText(
      'after',
      '\nExamples:\n  piflow eval-mnist --backend wasm --out docs/mnist\n  piflow eval-mnist --students runs/gm4/model --teacher-steps 4,64 -n 200\n' +
        '  piflow eval-mnist --data fashion-mnist --out docs/fashion-mnist\n',
    )
    .action(async (_options, command: Command) => {
      applyConfigFile(command);
      const o = command.opts();
      const backend = await selectBackend(command.optsWithGlobals(), (l) => console.log(l));
      const started = performance.now();
      const teacherSpec: string = o.teacher ?? o.data ?? 'mnist';
      const teacher = await loadAnyModel(teacherSpec);
      if (!isFlowModel(teacher.model) || teacher.manifest.backbone.config.numClasses === undefined) {
        teacher.model.dispose();
        throw new UsageError(
          `${teacherSpec} is not a class-conditional teacher.`,
          'pass an image teacher from `piflow train-teacher --data mnist` (or fashion-mnist).',
        );
      }
      const recorded = teacher.manifest.metadata?.dataset;
      const dataName: string =
        o.data ?? (typeof recorded === 'string' && imageDatasetNames.includes(recorded) ? recorded : 'mnist');
      const students: string[] =
        o.students ??
        SHIPPED_STUDENTS.map((s) => path.join(shippedModelsDir(), dataName, s)).filter((dir) =>
          existsSync(path.join(dir, 'model.json')),
        );
      let loadedClassifier: Awaited<ReturnType<typeof loadClassifier>>;
      try {
        loadedClassifier = await loadClassifier(o.classifier ?? dataName);
      } catch (error) {
        teacher.model.dispose();
        throw error;
      }
      const { classifier, dir: classifierDir } = loadedClassifier;
      const mnist = loadImageDataset(dataName);
      // Every read is asynchronous: tfjs's WebGPU backend cannot read GPU memory synchronously in Node.
      // At most 2 000 held-out images as the reference (all of MNIST's 999; the first 2 000 of Fashion-MNIST's
      // 10 000 test images): the k-NN metrics cost O(n²) per row.
      const referenceCount = Math.min(mnist.heldOut.count, 2000);
      const reference = await digitFeaturesAsync(
        classifier,
        mnist.heldOut.images.subarray(0, referenceCount * 784),
      );
      const count: number = o.count;
      const labels = Int32Array.from({ length: count }, (_, i) => i % 10);
      const noise = createRandom(o.seed).fillNormal(new Float32Array(count * 784));
      console.log(
        `${count} images per row (labels 0–9 cycled), reference: ${referenceCount} held-out ${dataName} images; classifier ${classifierDir}`,
      );

      const rows: MnistRow[] = [];
      const panels: { title: string; images: Float32Array }[] = [];
      const metricsOf = (images: Float32Array) =>
        digitMetricsAsync(classifier, { images, labels, count }, reference);

      // Real digits: the floor of each metric.
      const real = realDigits(mnist.train, count, createRandom(o.seed + 1));
      const realMetrics = await digitMetricsAsync(classifier, real, reference);
      rows.push({
        sampler: `real training ${dataName === 'mnist' ? 'digits' : 'images'} (${count})`,
        steps: 0,
        nfe: 0,
        ...sampleMetrics(realMetrics),
        alignment: Number.NaN,
        msPer100: 0,
      });
      console.log(formatMnistTable(rows, o.referenceSteps));

      const guidance = o.guidanceScale ?? teacher.manifest.sampling?.guidanceScale ?? 1;
      const referenceRun = await generate(teacher.model, teacher.manifest, noise, labels, {
        teacherSteps: o.referenceSteps,
        guidanceScale: guidance,
      });
      const add = async (
        sampler: string,
        steps: number,
        run: { images: Float32Array; seconds: number; nfe: number },
      ) => {
        const m = await metricsOf(run.images);
        const row: MnistRow = {
          sampler,
          steps,
          nfe: run.nfe,
          ...sampleMetrics(m),
          alignment: teacherAlignment(
            { values: run.images, dimension: 784 },
            { values: referenceRun.images, dimension: 784 },
          ),
          msPer100: (run.seconds * 1000 * 100) / count,
        };
        rows.push(row);
        console.log(formatMnistTable([row], o.referenceSteps).split('\n')[2]);
        return row;
      };
      for (const steps of o.teacherSteps as number[]) {
        const run =
          steps === o.referenceSteps
            ? referenceRun
            : await generate(teacher.model, teacher.manifest, noise, labels, {
                teacherSteps: steps,
                guidanceScale: guidance,
              });
        await add(`teacher Euler, CFG ${guidance}`, steps, run);
        if (steps === o.referenceSteps) panels.push({ title: `teacher-${steps}`, images: run.images });
      }
      for (const dir of students) {
        const student = await loadAnyModel(dir, o.plugin ?? []);
        if (isFlowModel(student.model)) {
          student.model.dispose();
          throw new UsageError(`${dir} is a teacher, not a student.`, 'list student folders in --students.');
        }
        const run = await generate(student.model, student.manifest, noise, labels, {
          families: student.families,
        });
        const name = studentName(student.manifest, student.families, guidance);
        await add(name, run.nfe, run);
        panels.push({ title: name, images: run.images });
        student.model.dispose();
      }

      await mkdir(o.out, { recursive: true });
      const grid = Math.min(o.grid as number, count);
      await writeImagePanels(
        path.join(o.out, 'grids.png'),
        panels.map((p) => ({
          title: p.title,
          images: p.images.subarray(0, grid * 784),
          shape: [grid, 28, 28, 1],
        })),
        10,
        // labels 0–9 cycled over the images: the columns are the classes
        { columnLabels: mnist.classNames.map((name) => name.slice(0, 4)) },
      );
      const table = formatMnistTable(rows, o.referenceSteps);
      const seconds = (performance.now() - started) / 1000;
      const invocation = commandLine();
      await writeFile(
        path.join(o.out, 'results.md'),
        `${table}\n\nPanels in grids.png, left to right: ${panels.map((p) => p.title).join(', ')}.\n\nBackend ${backend}; ${count} images per row; ${(seconds / 60).toFixed(1)} min; \`${invocation}\`.\n`,
      );
      await writeFile(
        path.join(o.out, 'results.json'),
        `${JSON.stringify({ backend, count, seed: o.seed, command: invocation, seconds, rows, panels: panels.map((p) => p.title) }, null, 2)}\n`,
      );
      console.log(
        `\n${table}\n\nwrote ${path.join(o.out, 'results.md')}, results.json and grids.png in ${seconds.toFixed(0)} s`,
      );
      teacher.model.dispose();
      classifier.dispose();
    });
}

/** A student's row name: its family's label for its head options (else the family name), and its step count. */
/** The student's row name; its distilled guidance scale is named when it differs from the teacher rows'. */
function studentName(manifest: ModelManifest, families: PolicyRegistry, teacherGuidance: number): string {
  const steps = manifest.sampling?.numInferenceSteps ?? 4;
  const name = manifest.family?.name ?? 'student';
  const family = families.has(name) ? families.get(name) : undefined;
  const head = family?.studentHead;
  const label = head?.label?.(resolveFamilyOptions('manifest.head', head.options, manifest.head)) ?? name;
  const guidance = manifest.sampling?.guidanceScale;
  const cfg = guidance !== undefined && guidance !== teacherGuidance ? `, CFG ${guidance}` : '';
  return `π-Flow ${label} (${steps} step${steps === 1 ? '' : 's'}${cfg})`;
}

function realDigits(
  split: { images: Float32Array; labels: Int32Array; count: number },
  count: number,
  random: ReturnType<typeof createRandom>,
): { images: Float32Array; labels: Int32Array; count: number } {
  const images = new Float32Array(count * 784);
  const labels = new Int32Array(count);
  const order = random.permutation(split.count);
  for (let i = 0; i < count; i++) {
    const j = order[i % split.count]!;
    images.set(split.images.subarray(j * 784, (j + 1) * 784), i * 784);
    labels[i] = split.labels[j]!;
  }
  return { images, labels, count };
}
