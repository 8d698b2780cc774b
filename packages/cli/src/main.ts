/** The `paradit` command: inspect, check (and, as issues land, compile, run, denoise). */
import { Command } from 'commander';
import { inspectCommand } from './commands/inspect';
import { checkCommand } from './commands/check';
import { denoiseCommand } from './commands/denoise';
import { compileCommand } from './commands/compile';
import { runCommand } from './commands/run';
import { launchCommand } from './commands/launch';
import { reportError } from './errors';

function debugWanted(argv: readonly string[]): boolean {
  return argv.includes('--debug');
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('paradit')
    .description('ParaDiT: an ahead-of-time compiler for diffusion transformers (ONNX -> sharded, cached GPU plans)')
    .option('--debug', 'print stack traces for errors')
    .showHelpAfterError()
    .exitOverride();
  let code = 0;
  const setCode = (c: number): void => {
    code = c;
  };
  inspectCommand(program, setCode);
  checkCommand(program, setCode);
  denoiseCommand(program, setCode);
  compileCommand(program, setCode);
  runCommand(program, setCode);
  launchCommand(program, setCode);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
      // Help and version exit 0; usage errors (already printed by commander) exit 2.
      return ce.exitCode === 0 ? 0 : 2;
    }
    return reportError(e, debugWanted(argv));
  }
  return code;
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.exitCode = reportError(e, debugWanted(process.argv));
  },
);
