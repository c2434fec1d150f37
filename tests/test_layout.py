"""The package's structure: no import cycle, config fields read directly, a short loop."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'cosnet_jax'


def _modules() -> dict[str, pathlib.Path]:
  out = {}
  for f in PACKAGE.rglob('*.py'):
    name = '.'.join(f.relative_to(ROOT).with_suffix('').parts)
    out[name[:-len('.__init__')] if name.endswith('.__init__') else name] = f
  return out


def _imports(mods: dict[str, pathlib.Path]) -> dict[str, set[str]]:
  """Package modules each module imports at module level (`from a import b`
  counts as a.b where that is a module, else as a)."""
  edges = {m: set() for m in mods}
  for m, f in mods.items():
    for node in ast.parse(f.read_text()).body:
      if isinstance(node, ast.ImportFrom) and node.module in mods:
        subs = {f'{node.module}.{a.name}' for a in node.names} & set(mods)
        edges[m] |= subs or {node.module}
        if len(subs) < len(node.names):
          edges[m].add(node.module)
      elif isinstance(node, ast.Import):
        edges[m] |= {a.name for a in node.names} & set(mods)
  return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
  state, stack = {}, []

  def visit(u):
    state[u] = 'open'
    stack.append(u)
    for v in sorted(edges[u]):
      if state.get(v) == 'open':
        return stack[stack.index(v):] + [v]
      if v not in state and (found := visit(v)):
        return found
    stack.pop()
    state[u] = 'done'
    return None

  for m in sorted(edges):
    if m not in state and (found := visit(m)):
      return found
  return None


def test_the_cycle_finder_finds_one():
  assert _cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
  assert _cycle({'a': {'b'}, 'b': set()}) is None


def test_no_import_cycle_among_the_package_modules():
  assert _cycle(_imports(_modules())) is None


# What train/ may use of inference/ and evaluation/: validation and the final
# report; a trained model's weights for model.init_from; the names of eval.tta
# modes and metrics.
TRAIN_TO_INFERENCE = {'cosnet_jax.train.validation': None,
                      'cosnet_jax.train.loop': {'cosnet_jax.inference.trained'},
                      'cosnet_jax.train.config_checks': {'cosnet_jax.inference.tta',
                                                         'cosnet_jax.evaluation.metrics'}}


def test_evaluation_is_numpy_and_training_reaches_inference_in_few_places():
  edges = _imports(_modules())
  for m, targets in edges.items():
    if m.startswith('cosnet_jax.evaluation'):
      assert all(t.startswith(('cosnet_jax.evaluation', 'cosnet_jax.errors')) for t in targets), m
    if m.startswith('cosnet_jax.train.') and TRAIN_TO_INFERENCE.get(m, set()) is not None:
      used = {t for t in targets if t.startswith(('cosnet_jax.inference',
                                                  'cosnet_jax.evaluation'))}
      assert used <= TRAIN_TO_INFERENCE.get(m, set()), (m, used)


def test_library_code_reads_config_fields_directly():
  """No `cfg.get('key', default)` restating a default that config.py sets."""
  pattern = re.compile(r'\b(cfg|config|data_cfg|model_cfg|opt_cfg|aug_cfg|platform_cfg|'
                       r'refine_cfg|tcfg|ccfg)(\.\w+)*\.get\(')
  found = [f'{f.relative_to(ROOT)}:{i}' for f in PACKAGE.rglob('*.py')
           for i, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
  assert not found, found


def test_the_training_loop_reads_in_one_screenful_or_three():
  assert len((PACKAGE / 'train' / 'loop.py').read_text().splitlines()) <= 350
