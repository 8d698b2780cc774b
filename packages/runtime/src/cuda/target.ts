/**
 * Whether this device can run a plan: the plan must target the CUDA backend and an architecture
 * the device executes. "sm_90a" cubins run only on compute capability 9.0 exactly (the 'a'
 * features are not forward compatible); plain "sm_XY" runs on XY and, through NVRTC
 * recompilation of module.cu, on any newer device. Pure: unit-tested without a GPU.
 */
import type { Plan } from '../plan/schema';

interface ParsedArch {
  readonly major: number;
  readonly minor: number;
  /** Arch-specific ('a') or family ('f') features that need the exact compute capability. */
  readonly specific: boolean;
}

export function parseArch(arch: string): ParsedArch | undefined {
  const m = /^(?:sm|compute)_(\d+)(\d)([af]?)$/.exec(arch.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), specific: m[3] !== '' };
}

interface TargetCheck {
  readonly ok: boolean;
  /** Why not, phrased for the user, with the fix. */
  readonly reason?: string;
  /** True when the plan's cubin can be loaded as is (else module.cu is compiled with NVRTC). */
  readonly cubinUsable: boolean;
}

/**
 * `world` is the number of ranks that will run the plan (launched processes, or ranks sharing this
 * GPU); `mode` says how, for the message. A plan runs on exactly cfg*ring*ulysses ranks.
 */
export function checkPlanTarget(target: Plan['target'], hasCubin: boolean, device: { name: string; major: number; minor: number }, world = 1, mode?: string): TargetCheck {
  const dev = `${device.name} (compute capability ${device.major}.${device.minor})`;
  if (target.backend !== 'cuda') {
    return { ok: false, cubinUsable: false, reason: `this plan was compiled for the ${target.backend} backend; recompile with --target cuda to run it on ${dev}` };
  }
  const want = parseArch(target.arch);
  if (!want) return { ok: false, cubinUsable: false, reason: `plan target arch '${target.arch}' is not an sm_XY architecture` };
  const exact = want.major === device.major && want.minor === device.minor;
  if (want.specific && !exact) {
    return {
      ok: false,
      cubinUsable: false,
      reason: `plan was compiled for ${target.arch}, whose kernels use features only compute capability ${want.major}.${want.minor} has, but this device is ${dev}; recompile the plan on this machine (or with --arch sm_${device.major}${device.minor})`,
    };
  }
  const older = device.major < want.major || (device.major === want.major && device.minor < want.minor);
  if (older) {
    return { ok: false, cubinUsable: false, reason: `plan needs ${target.arch} or newer, but this device is ${dev}; recompile the plan for it` };
  }
  const m = target.mesh;
  const planWorld = m.cfg * m.ring * m.ulysses;
  if (planWorld !== world) {
    const mesh = `cfg ${m.cfg}, ring ${m.ring}, ulysses ${m.ulysses}`;
    const how = mode ? ` (${mode})` : '';
    const reason =
      planWorld > 1 && world === 1
        ? `plan is sharded over a mesh (${mesh}), so it runs on ${planWorld} ranks, but this backend was opened as a single rank${how}; launch ${planWorld} processes, one per GPU (\`paradit launch --nproc ${planWorld} -- run ...\`, torchrun or srun), or run every rank on this GPU in one process (openPlan without dist)`
        : `plan is sharded over a mesh (${mesh}) of ${planWorld} rank(s), but ${world} rank(s) run it${how}; start exactly ${planWorld} ranks, or recompile the plan for a mesh of ${world}`;
    return { ok: false, cubinUsable: false, reason };
  }
  return { ok: true, cubinUsable: hasCubin && exact };
}
