/**
 * Running passes: one pass with its instruments (verify, timing, print-after), a pipeline (an
 * array of named passes run in order), and a fixpoint pipeline (its passes repeated until a whole
 * round changes nothing), which is itself a Pass so pipelines nest.
 */
import { InternalError, IrError, Module, wrapAt } from '@paradit/ir';
import type { Pass, PassContext } from './pass';
import { keepOutputNames } from './graph-edit';

/** Runs one pass with the context's instruments. The module is assumed verified already. */
export function runPass(pass: Pass, m: Module, ctx: PassContext): Module {
  const { report, verify, printAfter, dump, print } = ctx.instruments;
  report?.begin(pass.name);
  const t0 = performance.now();
  let out: Module;
  try {
    out = pass.run(m, ctx);
  } catch (e) {
    report?.end(performance.now() - t0, false);
    // A bad flag or input (--shape naming no input, ...) is the user's to fix: it reads as the
    // flag's own message, not as a failure of the pass that happened to check it.
    if (e instanceof IrError && e.code === 'E_INPUT') throw e;
    throw blame(e, `pass '${pass.name}' failed`);
  }
  report?.end(performance.now() - t0, out !== m);
  // Graph outputs keep their names through every pass (a rewrite that made a new unnamed value
  // for an output would otherwise rename the plan's and the runtime's outputs).
  if (out !== m) {
    const g = keepOutputNames(m.graph, out.graph);
    if (g !== out.graph) out = out.withGraph(g);
  }
  if (verify && out !== m) {
    try {
      verify(out);
    } catch (e) {
      // The input verified, so the pass is at fault: a bug in ParaDiT, whatever the verifier said.
      const msg = `pass '${pass.name}' produced invalid IR (its input verified; the pass is at fault): ${e instanceof Error ? e.message : String(e)}`;
      const bug = new InternalError(msg, `pass '${pass.name}'`, e);
      if (e instanceof Error && e.stack) bug.stack = e.stack;
      throw bug;
    }
  }
  if (dump && print && printAfter && (printAfter.includes(pass.name) || printAfter.includes('*'))) dump(pass.name, print(out));
  return out;
}

/** Runs `passes` in order; with a verifier, checks the input first so later failures blame a pass. */
export function runPipeline(m: Module, passes: readonly Pass[], ctx: PassContext): Module {
  const { verify } = ctx.instruments;
  if (verify) {
    try {
      verify(m);
    } catch (e) {
      throw blame(e, `the input of pipeline [${passes.map((p) => p.name).join(', ')}] is invalid IR (no pass ran yet)`);
    }
  }
  let cur = m;
  for (const p of passes) cur = runPass(p, cur, ctx);
  return cur;
}

/** A named pipeline usable as one pass (its passes show nested under its name in the report). */
export function pipelinePass(name: string, description: string, passes: readonly Pass[]): Pass {
  return {
    name,
    description,
    run(m, ctx) {
      let cur = m;
      for (const p of passes) cur = runPass(p, cur, ctx);
      return cur;
    },
  };
}

/**
 * A pipeline repeated until one whole round returns the module unchanged (every pass returned its
 * input object). More than `ctx.options.canonicalizeMaxRounds` rounds means some passes undo each
 * other; that is a bug in the passes, reported with the names of the passes still changing.
 */
export function fixpointPass(name: string, description: string, passes: readonly Pass[]): Pass {
  return {
    name,
    description,
    run(m, ctx) {
      const max = ctx.options.canonicalizeMaxRounds;
      let cur = m;
      for (let round = 0; round < max; round++) {
        const changed: string[] = [];
        for (const p of passes) {
          const next = runPass(p, cur, ctx);
          if (next !== cur) changed.push(p.name);
          cur = next;
        }
        if (changed.length === 0) return cur;
        if (round === max - 1) {
          throw new InternalError(
            `'${name}' did not reach a fixpoint in ${max} rounds: [${changed.join(', ')}] still changed the module in the last round; ` +
              'two rewrites probably undo each other (raise canonicalizeMaxRounds only if each round makes real progress)',
            `pipeline '${name}'`,
          );
        }
      }
      return cur;
    },
  };
}

/** Prefixes an error's message with where it happened, keeping its code and node name. */
/** IrErrors (the input's fault) keep their code and gain `where`; anything else is a ParaDiT bug. */
function blame(e: unknown, where: string): Error {
  return wrapAt(e, where);
}
