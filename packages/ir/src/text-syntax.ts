/**
 * Recursive-descent reader of the IR text form (printer.ts shows it) into a syntax tree that
 * parser.ts turns into IR. Grammar, whitespace-insensitive:
 *
 *   module   := 'module' 'opset' '(' (name '=' INT),* ')' '{' graph '}'   |   graph
 *   graph    := 'graph' name '(' (VALUE ':' type),* ')' '{' stmt* 'return' VALUE,* '}'
 *   stmt     := VALUE '=' 'const' type data
 *             | (VALUE,+ '=')? OP '(' (VALUE | '_'),* ')' ('{' (name '=' attr),* '}')? (':' type,+)?
 *   type     := DTYPE '[' (INT | IDENT | STRING),* ']' placement?
 *   placement:= ('@replicated' | ('@shard' '(' INT ',' name ')')+) ('@tokens' '(' INT (',' INT)* ':' '[' INT,* ']' '/' INT ')')?
 *               ('@partial' '(' ('sum' | 'max' | 'mean') ',' name ')')?
 *   data     := '[' number,* ']' | '<hash HEX16>'
 *   attr     := INT | FLOAT | STRING | DTYPE-type data | graph | '[' elements ']'
 *             | ('ints' | 'floats' | 'strings' | 'tensors' | 'graphs') '[' ']'
 *
 * Output types may be left out in hand-written text; they are then taken from inference.
 */
import { DTYPES } from './dtype';
import type { DType } from './dtype';
import type { AttrValue, AxisShard, Dim, PartialReduce, Placement, TensorType, TokenOrder } from './graph';
import { isStaticShape, tensorType } from './graph';
import { Tensor, numel } from './tensor';
import { elidedTensor } from './content-hash';
import { describeToken, textError, tokenize } from './text-tokens';
import type { Token } from './text-tokens';
import type { AttrAst, ConstAst, ConstDataAst, GraphAst, ModuleAst, NodeAst, ParamAst, RefAst } from './text-ast';

const LIST_KINDS = new Set(['ints', 'floats', 'strings', 'tensors', 'graphs']);

export function parseSyntax(src: string): ModuleAst {
  return new SyntaxParser(src).module();
}

class SyntaxParser {
  private readonly toks: readonly Token[];
  private readonly hints: ReadonlyMap<number, string>;
  private i = 0;

  constructor(private readonly src: string) {
    const lexed = tokenize(src);
    this.toks = lexed.tokens;
    this.hints = lexed.hints;
  }

  // -------------------------------------------------------------------------------------------
  // Token helpers.

  private peek(k = 0): Token {
    return this.toks[Math.min(this.i + k, this.toks.length - 1)]!;
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.i++;
    return t;
  }

  private isPunct(p: string, k = 0): boolean {
    const t = this.peek(k);
    return t.kind === 'punct' && t.text === p;
  }

  private isIdent(text: string, k = 0): boolean {
    const t = this.peek(k);
    return t.kind === 'ident' && t.text === text;
  }

  private accept(p: string): boolean {
    if (!this.isPunct(p)) return false;
    this.i++;
    return true;
  }

  private fail(t: Token, expected: string): never {
    throw textError(this.src, t.line, t.col, `expected ${expected}, got ${describeToken(t)}`);
  }

  private expect(p: string): Token {
    if (!this.isPunct(p)) this.fail(this.peek(), `'${p}'`);
    return this.next();
  }

  private keyword(word: string): Token {
    if (!this.isIdent(word)) this.fail(this.peek(), `'${word}'`);
    return this.next();
  }

  private name(what: string): string {
    const t = this.peek();
    if (t.kind !== 'ident' && t.kind !== 'string') this.fail(t, what);
    return this.next().text;
  }

  private string(): string {
    const t = this.peek();
    if (t.kind !== 'string') this.fail(t, 'a string');
    return this.next().text;
  }

  private int(what: string): number {
    const t = this.peek();
    if (t.kind !== 'int') this.fail(t, what);
    return this.next().num;
  }

  /** `a, b, c` up to (not including) `close`; `item` parses one element. */
  private list<T>(close: string, item: () => T): T[] {
    const out: T[] = [];
    if (this.isPunct(close)) return out;
    do out.push(item());
    while (this.accept(','));
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Structure.

  module(): ModuleAst {
    let opsets: Record<string, number> | undefined;
    let graph: GraphAst;
    if (this.isIdent('module')) {
      this.next();
      this.keyword('opset');
      this.expect('(');
      opsets = {};
      const table = opsets;
      this.list(')', () => {
        const t = this.peek();
        const domain = this.name('an opset domain (like ai.onnx)');
        const key = domain === 'ai.onnx' ? '' : domain;
        if (key in table) this.fail(t, `each domain once, but '${domain}' repeats`);
        this.expect('=');
        table[key] = this.int('an opset version');
      });
      this.expect(')');
      this.expect('{');
      graph = this.graph();
      this.expect('}');
    } else {
      graph = this.graph();
    }
    if (this.peek().kind !== 'eof') this.fail(this.peek(), 'end of input');
    return { opsets, graph };
  }

  private graph(): GraphAst {
    const start = this.keyword('graph');
    const name = this.name('a graph name');
    this.expect('(');
    const params = this.list(')', (): ParamAst => {
      const v = this.value();
      this.expect(':');
      return { ...v, type: this.type() };
    });
    this.expect(')');
    this.expect('{');
    const body: (ConstAst | NodeAst)[] = [];
    while (!this.isIdent('return')) body.push(this.statement());
    const ret = this.next();
    const returns = this.list('}', () => this.value());
    this.expect('}');
    return { name, pos: start, params, body, returns, headerHint: this.hints.get(start.line), returnHint: this.hints.get(ret.line) };
  }

  private value(): RefAst {
    const t = this.peek();
    if (t.kind !== 'value') this.fail(t, 'a value like %4');
    this.next();
    return { label: t.text, pos: t };
  }

  private statement(): ConstAst | NodeAst {
    const start = this.peek();
    const labels: RefAst[] = [];
    if (start.kind === 'value') {
      labels.push(...this.list('=', () => this.value()));
      this.expect('=');
      if (this.isIdent('const')) {
        this.next();
        if (labels.length !== 1) this.fail(start, 'one value for a constant');
        const type = this.type();
        if (!isStaticShape(type.shape)) this.fail(start, `a static shape for constant %${labels[0]!.label}`);
        const data = this.data(type.dtype, type.shape);
        return { kind: 'const', ...labels[0]!, type, data, hint: this.hints.get(start.line) };
      }
    } else if (start.kind !== 'ident' || start.text === 'const') {
      this.fail(start, "a statement (`%v = Op(...)`, `%v = const ...` or `return`)");
    }
    const opTok = this.peek();
    if (opTok.kind !== 'ident') this.fail(opTok, 'an op name');
    this.next();
    this.expect('(');
    const args = this.list(')', (): RefAst | null => {
      if (this.isIdent('_')) {
        this.next();
        return null;
      }
      return this.value();
    });
    this.expect(')');
    const attrs = new Map<string, AttrAst>();
    if (this.accept('{')) {
      this.list('}', () => {
        const t = this.peek();
        const key = this.name('an attribute name');
        if (attrs.has(key)) this.fail(t, `each attribute once, but '${key}' repeats`);
        this.expect('=');
        attrs.set(key, this.attr());
      });
      this.expect('}');
    }
    let types: TensorType[] | undefined;
    const typesPos = this.peek();
    if (this.accept(':')) {
      types = [this.type()];
      while (this.accept(',')) types.push(this.type());
      if (types.length !== labels.length) {
        this.fail(typesPos, `${labels.length} output type(s) for ${labels.length} value(s), got ${types.length}`);
      }
    }
    return { kind: 'node', pos: start, labels, op: opTok.text, opPos: opTok, args, attrs, types, typesPos, hint: this.hints.get(start.line) };
  }

  // -------------------------------------------------------------------------------------------
  // Types and data.

  private dtype(): DType {
    const t = this.peek();
    if (t.kind !== 'ident' || !(t.text in DTYPES)) this.fail(t, `a dtype (${Object.keys(DTYPES).join(', ')})`);
    this.next();
    return t.text as DType;
  }

  private type(): TensorType {
    const dtype = this.dtype();
    this.expect('[');
    const shape = this.list(']', (): Dim => {
      const t = this.peek();
      if (t.kind === 'int') return this.int('a dimension');
      if (t.kind === 'ident' || t.kind === 'string') return this.next().text;
      return this.fail(t, 'a dimension (a size or a symbol)');
    });
    this.expect(']');
    return tensorType(dtype, shape, this.placement());
  }

  /**
   * `@replicated` or `@shard(a,m)` (repeated for `also`), then optionally `@tokens(a:[s,...]/c)`,
   * then optionally `@partial(reduce,m)`.
   */
  private placement(): Placement | undefined {
    if (!this.isPunct('@')) return undefined;
    const start = this.peek(1);
    const shards: AxisShard[] = [];
    let replicated = false;
    let tokens: TokenOrder | undefined;
    let partial: PartialReduce | undefined;
    while (this.accept('@')) {
      const t = this.peek();
      if (partial) this.fail(t, 'nothing after @partial(...)');
      const placed = replicated || shards.length > 0;
      if (this.isIdent('replicated') && !placed) {
        this.next();
        replicated = true;
      } else if (this.isIdent('shard') && !replicated && !tokens) {
        this.next();
        this.expect('(');
        const axis = this.int('a tensor axis');
        this.expect(',');
        shards.push({ axis, meshAxis: this.name('a mesh axis name') });
        this.expect(')');
      } else if (this.isIdent('tokens') && placed && !tokens) {
        this.next();
        this.expect('(');
        const axis = this.int('a tensor axis');
        const also: number[] = [];
        while (this.accept(',')) also.push(this.int('a tensor axis'));
        this.expect(':');
        this.expect('[');
        const segments = this.list(']', () => this.int('a segment length'));
        this.expect(']');
        this.expect('/');
        const chunks = this.int('a chunk count');
        this.expect(')');
        tokens = also.length > 0 ? { axis, segments, chunks, also } : { axis, segments, chunks };
      } else if (this.isIdent('partial') && placed) {
        this.next();
        this.expect('(');
        const r = this.peek();
        const reduce = this.name('a reduction (sum, max or mean)');
        if (reduce !== 'sum' && reduce !== 'max' && reduce !== 'mean') this.fail(r, 'a reduction (sum, max or mean)');
        this.expect(',');
        partial = { reduce, meshAxis: this.name('a mesh axis name') };
        this.expect(')');
      } else {
        this.fail(t, !placed ? "'replicated' or 'shard(...)'" : tokens ? "'partial(...)'" : replicated ? "'tokens(...)' or 'partial(...)'" : "'shard(...)', 'tokens(...)' or 'partial(...)'");
      }
    }
    const extra = { ...(tokens ? { tokens } : {}), ...(partial ? { partial } : {}) };
    if (replicated) return { kind: 'replicated', ...extra };
    if (shards.length === 0) return this.fail(start, 'a placement');
    const [first, ...also] = shards;
    return { kind: 'sharded', ...first!, ...(also.length ? { also } : {}), ...extra };
  }

  private element(dtype: DType): number {
    const t = this.next();
    if (dtype === 'bool' && t.kind === 'ident' && (t.text === 'true' || t.text === 'false')) return t.text === 'true' ? 1 : 0;
    if (t.kind === 'int') return t.num;
    if (DTYPES[dtype].kind === 'float') {
      if (t.kind === 'float') return t.num;
      if (t.kind === 'ident' && (t.text === 'inf' || t.text === 'nan')) return t.text === 'inf' ? Infinity : NaN;
    }
    return this.fail(t, `a ${dtype} element`);
  }

  /** Inline elements (as a Tensor) or elided `<hash ...>`. */
  private data(dtype: DType, shape: readonly number[]): ConstDataAst {
    const t = this.peek();
    if (t.kind === 'elided') {
      this.next();
      return { kind: 'elided', hash: t.text };
    }
    this.expect('[');
    const values = this.list(']', () => this.element(dtype));
    this.expect(']');
    if (values.length !== numel(shape)) this.fail(t, `${numel(shape)} elements for shape [${shape.join(',')}], got ${values.length}`);
    return { kind: 'tensor', tensor: Tensor.from(dtype, shape, values) };
  }

  private tensorAttr(): Tensor {
    const start = this.peek();
    const type = this.type();
    if (type.placement || !isStaticShape(type.shape)) this.fail(start, 'a tensor type with a static shape and no placement');
    const d = this.data(type.dtype, type.shape);
    return d.kind === 'tensor' ? d.tensor : elidedTensor(type.dtype, type.shape, d.hash);
  }

  private isFloatStart(k = 0): boolean {
    const t = this.peek(k);
    return t.kind === 'float' || (t.kind === 'ident' && (t.text === 'inf' || t.text === 'nan'));
  }

  private floatAttr(): number {
    const t = this.next();
    if (t.kind === 'ident') return t.text === 'inf' ? Infinity : NaN;
    if (t.kind === 'int') return Math.fround(t.num);
    return t.f64 ? t.num : Math.fround(t.num);
  }

  private attr(): AttrAst {
    const t = this.peek();
    const value = (v: AttrValue): AttrAst => ({ kind: 'value', value: v });
    if (t.kind === 'int') return value({ kind: 'int', value: this.next().num });
    if (this.isFloatStart()) return value({ kind: 'float', value: this.floatAttr() });
    if (t.kind === 'string') return value({ kind: 'string', value: this.next().text });
    if (this.isIdent('graph')) return { kind: 'graph', graph: this.graph() };
    if (t.kind === 'ident' && LIST_KINDS.has(t.text) && this.isPunct('[', 1) && this.isPunct(']', 2)) {
      this.i += 3;
      if (t.text === 'graphs') return { kind: 'graphs', graphs: [] };
      return value({ kind: t.text as 'ints' | 'floats' | 'strings' | 'tensors', value: [] } as AttrValue);
    }
    if (t.kind === 'ident' && t.text in DTYPES) return value({ kind: 'tensor', value: this.tensorAttr() });
    if (!this.isPunct('[')) this.fail(t, 'an attribute value');
    this.next();
    const first = this.peek();
    let out: AttrAst;
    if (first.kind === 'int' || this.isFloatStart()) {
      // A list with any float element is a floats list (the printer marks every float).
      const items = this.list(']', () => (this.isFloatStart() ? { x: this.floatAttr(), float: true } : { x: this.int('a number'), float: false }));
      out = items.some((it) => it.float)
        ? value({ kind: 'floats', value: items.map((it) => (it.float ? it.x : Math.fround(it.x))) })
        : value({ kind: 'ints', value: items.map((it) => it.x) });
    } else if (first.kind === 'string') {
      out = value({ kind: 'strings', value: this.list(']', () => this.string()) });
    } else if (this.isIdent('graph')) {
      out = { kind: 'graphs', graphs: this.list(']', () => this.graph()) };
    } else if (first.kind === 'ident' && first.text in DTYPES) {
      out = value({ kind: 'tensors', value: this.list(']', () => this.tensorAttr()) });
    } else {
      return this.fail(first, "a list element, or a typed empty list like 'ints[]'");
    }
    this.expect(']');
    return out;
  }
}
