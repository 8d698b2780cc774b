import { Module, exportModel, importModel, printModule } from '@paradit/ir';
import { createPassContext, defaultPipeline, runPipeline } from '@paradit/passes';
import { ZOO_BASE, buildZooDit } from './models/dit-zoo';
test('probe', () => {
  const raw = importModel(exportModel(buildZooDit({ ...ZOO_BASE, blocks: ['cross'], mask: true, attention: 'batched', dynamic: true })));
  const m = runPipeline(raw, defaultPipeline(), createPassContext({ verify: true }));
  console.log(m.graph.nodes.filter((n) => n.op === 'attention' || n.op === 'Softmax').length, m.graph.nodes.filter((n) => n.op === 'attention').length);
  require('fs').writeFileSync('/tmp/probe/out.txt', printModule(m));
});
