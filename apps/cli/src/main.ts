import { maxWasmThreads } from '@piflow/backend-node';
import { Command, Option } from 'commander';
import { benchCommand } from './commands/bench';
import { demoCommand } from './commands/demo';
import { distillCommand } from './commands/distill';
import { evalCommand } from './commands/eval';
import { evalMnistCommand } from './commands/eval-mnist';
import { sampleCommand } from './commands/sample';
import { serveCommand } from './commands/serve-teacher';
import { trainClassifierCommand } from './commands/train-classifier';
import { trainTeacherCommand } from './commands/train-teacher';
import { formatError } from './errors';
import { integer } from './options';

const program = new Command('piflow')
  .description('π-Flow: few-step generation by policy-based imitation distillation (TensorFlow.js).')
  .version('0.0.0')
  .addOption(
    new Option(
      '--backend <name>',
      'tfjs backend: auto, tensorflow (tfjs-node-gpu/-node), webgpu, wasm or cpu',
    ).default('auto'),
  )
  .addOption(
    new Option(
      '--threads <n>',
      `threads of the wasm backend and piflow's kernels, 1 to ${maxWasmThreads} (more helps on an idle machine only; see docs/BENCHMARKS.md)`,
    )
      .default(1)
      .argParser(integer('--threads', 1, maxWasmThreads)),
  )
  .option('--verbose', 'print stack traces on errors', false)
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (message, write) => write(message) });

for (const make of [
  trainTeacherCommand,
  trainClassifierCommand,
  distillCommand,
  sampleCommand,
  evalCommand,
  evalMnistCommand,
  benchCommand,
  serveCommand,
  demoCommand,
]) {
  const command = make();
  if (!command.options.some((o) => o.long === '--config') && command.name() !== 'serve-teacher') {
    command.option('--config <file>', 'read options from a JSON or YAML file (flags win)');
  }
  program.addCommand(command);
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  console.error(formatError(error, program.opts().verbose || process.argv.includes('--verbose')));
  process.exitCode = 1;
}
