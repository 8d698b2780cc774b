/**
 * SplitToSequence + SequenceAt at constant positions (how the dynamo exporter without its
 * optimizer spells torch.split / chunk) import as one Split; any other use of a sequence is
 * refused with the unsupported-op list. Models: tests/onnx-models/*.onnx, written with onnx's
 * helper (the script is in the test's comment below).
 *
 *   split-to-sequence.onnx: x[2,6]; SplitToSequence(x, 4) {axis=1} -> pieces [2,4], [2,2];
 *   a = piece 0, b = piece -1; SplitToSequence(x) {axis=0, keepdims=0} -> rows [6]; r = row -1.
 */
import path from 'node:path';
import { IrError, Tensor, interpret, loadModel } from '@paradit/ir';

const DIR = path.join(__dirname, 'onnx-models');

test('SplitToSequence + SequenceAt become a Split (chunk size, negative positions, keepdims=0)', () => {
  const m = loadModel(path.join(DIR, 'split-to-sequence.onnx'));
  const ops = m.graph.nodes.map((n) => n.op);
  expect(ops).not.toContain('SplitToSequence');
  expect(ops.filter((o) => o === 'Split')).toHaveLength(2);
  const x = Tensor.from('f32', [2, 6], [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15]);
  const [a, b, r] = interpret(m, [x]);
  expect(a!.shape).toEqual([2, 4]);
  expect(Array.from(a!.data)).toEqual([0, 1, 2, 3, 10, 11, 12, 13]);
  expect(b!.shape).toEqual([2, 2]);
  expect(Array.from(b!.data)).toEqual([4, 5, 14, 15]);
  expect(r!.shape).toEqual([6]);
  expect(Array.from(r!.data)).toEqual([10, 11, 12, 13, 14, 15]);
});

test('a sequence read by anything but SequenceAt stays unsupported, listed with its nodes', () => {
  const load = (): unknown => loadModel(path.join(DIR, 'sequence-concat.onnx'));
  expect(load).toThrow(IrError);
  expect(load).toThrow(/ops SplitToSequence, ConcatFromSequence are not supported by ParaDiT:\n  SplitToSequence: 1 node \('s'\)/);
});
