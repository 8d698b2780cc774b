/** The `paradit` command: inspect, check (and, as issues land, compile, run, denoise). */
import { spawnSync } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { Command } from 'commander';
import { inspectCommand } from './commands/inspect';
import { checkCommand } from './commands/check';
import { denoiseCommand } from './commands/denoise';
import { decodeCommand } from './commands/decode';
import { compileCommand } from './commands/compile';
import { runCommand } from './commands/run';
import { launchCommand } from './commands/launch';
import { reportError } from './errors';

function debugWanted(argv: readonly string[]): boolean {
  return argv.includes('--debug');
}

/**
 * --debug stacks point into the TypeScript sources: the bundle ships a linked source map, which
 * Node applies only to files loaded after source maps were enabled, so a --debug run re-executes
 * itself once with --enable-source-maps (the child inherits stdio, signals and the exit code).
 */
function reexecWithSourceMaps(): boolean {
  if (!debugWanted(process.argv) || process.execArgv.includes('--enable-source-maps') || process.env['PARADIT_SOURCE_MAPS'] === '1') return false;
  const r = spawnSync(process.execPath, ['--enable-source-maps', ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, PARADIT_SOURCE_MAPS: '1' } });
  process.exitCode = r.status ?? (r.signal ? 128 + (osConstants.signals[r.signal] ?? 0) : 3);
  return true;
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('paradit')
    .description('ParaDiT: an ahead-of-time compiler for diffusion transformers (ONNX -> sharded, cached GPU plans)')
    .option('--debug', 'print stack traces for errors')
    // A usage error is one paragraph: commander's message and where the options are listed
    // (not the whole help); subcommands inherit both settings.
    .showHelpAfterError("(run 'paradit help' or 'paradit COMMAND --help' for the options)")
    .configureOutput({ outputError: (text, write) => write(`paradit: ${text}`) })
    .exitOverride();
  let code = 0;
  const setCode = (c: number): void => {
    code = c;
  };
  inspectCommand(program, setCode);
  checkCommand(program, setCode);
  denoiseCommand(program, setCode);
  decodeCommand(program, setCode);
  compileCommand(program, setCode);
  runCommand(program, setCode);
  launchCommand(program, setCode);
  for (const c of program.commands) c.showHelpAfterError(`(run 'paradit ${c.name()} --help' for its options)`);
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

// `pnpm paradit ...` runs the script at the repository root; relative paths mean the caller's
// folder, which pnpm passes as INIT_CWD.
if (process.env['npm_lifecycle_event'] === 'paradit' && process.env['INIT_CWD']) process.chdir(process.env['INIT_CWD']);

if (!reexecWithSourceMaps()) {
  main(process.argv).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.exitCode = reportError(e, debugWanted(process.argv));
    },
  );
}
