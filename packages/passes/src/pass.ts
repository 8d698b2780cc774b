/**
 * The pass interface and the context every pass receives.
 *
 * A pass is a pure `Module -> Module` function with a kebab-case name equal to its file name. It
 * returns the module it was given (the same object) when it changes nothing: pipelines detect a
 * fixpoint by identity, and instruments skip work for unchanged modules.
 *
 * Everything a pass may depend on besides its input comes through the PassContext: typed options
 * and instruments (verifier, timing report, print-after dumps). Nothing reads env vars or globals.
 */
import { Mesh, Module, makeMesh, printModule, verify } from '@paradit/ir';
import { PassReport } from './report';

export interface Pass {
  /** kebab-case, equal to the file that defines the pass ('fold-constants'). */
  readonly name: string;
  /** One line: what the pass does. */
  readonly description: string;
  /** Pure. Returns `m` itself when nothing changed. */
  run(m: Module, ctx: PassContext): Module;
}

/** Options of every pass, in one typed object (later passes add their fields here). */
export interface PassOptions {
  /**
   * fold-constants: the most elements a folded constant may have, and the most elements of a
   * constant operand it may read. Larger results stay computed at run time, so weights are never
   * materialized twice; shape arithmetic (Shape, Size, and everything on small integer vectors)
   * is always far below it.
   */
  readonly foldMaxElements: number;
  /**
   * eliminate-common-subexpressions: constants up to this many elements (and loaded ones) are
   * merged by content; larger external ones by their file range; other large ones never, so a
   * 2.6 GB model is never read just to compare weights.
   */
  readonly cseMaxContentElements: number;
  /** canonicalize: the most rounds of its pass list before it reports that it does not converge. */
  readonly canonicalizeMaxRounds: number;
  /**
   * The pattern rewriter: the most rewrites per graph, as a multiple of its node count (plus 1000).
   * A rule set that exceeds it has two rules that undo each other.
   */
  readonly rewriteStepsPerNode: number;
  /**
   * The context-parallel passes: the (cfg, ring, ulysses) mesh to compile for (mesh.ts). Default
   * 1x1x1 (no parallelism). The CLI makes it from --ulysses/--ring/--cfg with meshFromOptions.
   */
  readonly mesh: Mesh;
}

export const DEFAULT_PASS_OPTIONS: PassOptions = Object.freeze({
  foldMaxElements: 1 << 16,
  cseMaxContentElements: 1 << 16,
  canonicalizeMaxRounds: 10,
  rewriteStepsPerNode: 20,
  mesh: makeMesh(),
});

/** Debugging and measurement hooks; all optional, all passed in by the caller. */
interface Instruments {
  /** Checks the module before the first pass and after every pass that changed it; throws on invalid IR. */
  readonly verify?: (m: Module) => void;
  /** Collects the wall time (and change flag) of every pass run. */
  readonly report?: PassReport;
  /** Pass names after which `dump` receives the printed module ('*' = after every pass). */
  readonly printAfter?: readonly string[];
  /** Receives the module text for `printAfter`. */
  readonly dump?: (passName: string, text: string) => void;
  /** The printer used for dumps. */
  readonly print?: (m: Module) => string;
}

export interface PassContext {
  readonly options: PassOptions;
  readonly instruments: Instruments;
}

/** What callers set when making a context; everything has a default. */
export interface PassContextInit {
  readonly options?: Partial<PassOptions>;
  /** true: run the IR verifier around every pass (@paradit/ir's `verify`: the rules the module declares); or a verifier of your own. */
  readonly verify?: boolean | ((m: Module) => void);
  /** true: make a fresh report (read it back from `ctx.instruments.report`); or one to add to. */
  readonly report?: boolean | PassReport;
  readonly printAfter?: readonly string[];
  readonly dump?: (passName: string, text: string) => void;
  readonly print?: (m: Module) => string;
}

/** Makes a context: default options overridden by `init.options`, instruments as asked. */
export function createPassContext(init: PassContextInit = {}): PassContext {
  const check = init.verify === true ? verify : init.verify === false ? undefined : init.verify;
  const report = init.report === true ? new PassReport() : init.report === false ? undefined : init.report;
  const instruments: Instruments = {
    verify: check,
    report,
    printAfter: init.printAfter,
    dump: init.dump,
    print: init.print ?? ((m: Module) => printModule(m)),
  };
  return Object.freeze({ options: Object.freeze({ ...DEFAULT_PASS_OPTIONS, ...init.options }), instruments: Object.freeze(instruments) });
}
