/**
 * Which rank `paradit launch` names as the one that failed, from the ranks' exits and last error
 * lines (commands/launch.ts rootCause), and the fault-hook and --timeout parsing (launched.ts).
 */
import { IrError } from '@paradit/ir';
import { rootCause } from '../../packages/cli/src/commands/launch';
import type { RankExit } from '../../packages/cli/src/commands/launch';
import { faultFor, timeoutMs } from '../../packages/cli/src/launched';

const exit = (rank: number, code: number | null, at: number, extra: Partial<RankExit> = {}): RankExit => ({
  rank,
  exit: { code, signal: null, at },
  stopped: false,
  ...extra,
});

describe('rootCause', () => {
  it('is undefined when every rank succeeded', () => {
    expect(rootCause([exit(0, 0, 1), exit(1, 0, 2)])).toBeUndefined();
  });

  it('prefers a rank that failed by itself over the peers that reported it (even when they exit first)', () => {
    const r = rootCause([exit(0, 4, 1, { lastError: 'rank 0 stopped because rank 1 failed: boom' }), exit(1, 2, 2, { lastError: 'boom' })]);
    expect(r).toEqual({ rank: 1, why: 'boom', code: 2 });
  });

  it('a rank killed by a signal it was not sent by the launcher: 128 + signal', () => {
    const r = rootCause([exit(0, 4, 2), { rank: 1, exit: { code: null, signal: 'SIGKILL', at: 1 }, stopped: false }]);
    expect(r).toEqual({ rank: 1, why: 'killed by SIGKILL', code: 137 });
  });

  it('a hung rank stopped by the launcher is named from its peers\' reports (exit 4)', () => {
    const r = rootCause([
      exit(0, 4, 1, { lastError: 'rank 0 stopped because rank 1 failed: stopped responding: no heartbeat for 3.4 s' }),
      { rank: 1, exit: { code: null, signal: 'SIGKILL', at: 5 }, stopped: true },
    ]);
    expect(r).toEqual({ rank: 1, why: 'stopped responding: no heartbeat for 3.4 s (reported by rank 0)', code: 4 });
  });
});

describe('fault hooks and --timeout', () => {
  it('PARADIT_FAULT applies to PARADIT_FAULT_RANK only (default 0); unknown faults are refused', () => {
    expect(faultFor(1, { PARADIT_FAULT: 'kill', PARADIT_FAULT_RANK: '1' })).toBe('kill');
    expect(faultFor(0, { PARADIT_FAULT: 'kill', PARADIT_FAULT_RANK: '1' })).toBeUndefined();
    expect(faultFor(0, { PARADIT_FAULT: 'hang' })).toBe('hang');
    expect(faultFor(0, {})).toBeUndefined();
    expect(() => faultFor(0, { PARADIT_FAULT: 'explode' })).toThrow(/PARADIT_FAULT=explode: expected one of load, step, exit, kill, hang/);
    expect(() => faultFor(0, { PARADIT_FAULT: 'load', PARADIT_FAULT_RANK: 'x' })).toThrow(IrError);
  });

  it('--timeout in seconds, default 300', () => {
    const saved = process.env['PARADIT_TIMEOUT'];
    delete process.env['PARADIT_TIMEOUT'];
    try {
      expect(timeoutMs(undefined)).toBe(300_000);
      expect(timeoutMs('2.5')).toBe(2500);
      expect(() => timeoutMs('0')).toThrow(/--timeout 0: expected a positive number of seconds/);
      process.env['PARADIT_TIMEOUT'] = '7';
      expect(timeoutMs(undefined)).toBe(7000);
      expect(timeoutMs('3')).toBe(3000);
    } finally {
      if (saved === undefined) delete process.env['PARADIT_TIMEOUT'];
      else process.env['PARADIT_TIMEOUT'] = saved;
    }
  });
});
