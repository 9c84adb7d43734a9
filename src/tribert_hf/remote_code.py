"""The code a saved folder carries, so that it loads with `trust_remote_code=True` where tribert_hf is not installed.

transformers copies a registered class's module file into the folder, with the files it imports as
`from .name import ...`, all side by side, and loads them from there. It cannot follow an import into a
sub-package: it reads `from .separation.unet import X` as a file named `separation.unet.py`, and
`from ..configuration_tribert import X` as `.configuration_tribert.py`, and fails
(huggingface/transformers#29714). tribert_hf has sub-packages (`separation/`, `baselines/`, `pose/`), so:

* the modules a saved folder needs import across folders absolutely (`from tribert_hf.separation.unet import X`,
  which transformers' scan does not follow) and within a folder relatively (`from .losses import X`);
* `save_pretrained` of every class registered for an Auto class (`RemoteCodeMixin`) then writes the folder's
  code itself (`write_flat_code`): every tribert_hf module the class needs, under its file name, with each import
  of another of them rewritten as `from .unet import X`. File names must be unique across the package.

Imports inside a `try` that catches `ImportError` are optional (transformers does not require them either) and are
left as they are: the pipeline's `tribert_hf.pipelines` for video files, for example.
"""

import ast
import importlib.util
from pathlib import Path


# The package these modules belong to: "tribert_hf", or the dynamic module of a folder loaded as remote code (whose
# modules import each other as `from .name import ...`, so that a reloaded model saves again).
PACKAGE = __name__.rpartition(".")[0]

_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        if handler.type is None:
            return True
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(t, ast.Name) and t.id in _IMPORT_ERRORS for t in types):
            return True
    return False


def _required_imports(tree: ast.AST) -> list[ast.ImportFrom]:
    """The `from ... import ...` statements of a module, wherever they are, except those in a `try` body whose
    handlers catch `ImportError`."""
    found = []

    def visit(node, optional):
        if isinstance(node, ast.ImportFrom) and not optional:
            found.append(node)
        if isinstance(node, ast.Try):
            for child in node.body:
                visit(child, optional or _catches_import_error(node))
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, optional)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(tree, False)
    return found


def _resolve(module_name: str, node: ast.ImportFrom) -> str:
    """The absolute name of the module a `from ... import` statement of `module_name` imports from."""
    if node.level == 0:
        return node.module
    package = module_name.split(".")[: -node.level]  # the module's package, and `level - 1` packages up
    return ".".join(package + ([node.module] if node.module else []))


def _module_file(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImportError(f"Cannot find the module {name!r} to copy next to a saved model.")
    return Path(spec.origin)


def code_files(module_names, package: str = PACKAGE) -> dict[str, tuple[Path, list[tuple[ast.ImportFrom, str]]]]:
    """Every module of `package` that `module_names` need, recursively: `{module name: (file, [(import statement,
    the module it imports from)])}` for the statements that import from another module of the package."""
    found, todo = {}, list(module_names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = _module_file(name)
        if path.name == "__init__.py":
            raise ValueError(
                f"{name!r} is a package: the code saved with a model imports modules, not packages (write `from "
                f"{name}.module import X`)."
            )
        internal = []
        for node in _required_imports(ast.parse(path.read_bytes(), filename=str(path))):
            target = _resolve(name, node)
            if target == package or target.startswith(package + "."):
                if node.module is None:
                    raise ValueError(f"{path}:{node.lineno}: write `from .module import X`, not `from . import module`.")
                internal.append((node, target))
                todo.append(target)
        found[name] = (path, internal)
    return found


def _rewrite(source: bytes, imports: list[tuple[ast.ImportFrom, str]]) -> bytes:
    """`source` with each import statement replaced by `from .<file name> import <names>` (on one line)."""
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    edits = []
    for node, target in imports:
        flat = ast.ImportFrom(module=target.rpartition(".")[2], names=node.names, level=1)
        begin = starts[node.lineno - 1] + node.col_offset  # ast offsets are in bytes of UTF-8
        end = starts[node.end_lineno - 1] + node.end_col_offset
        edits.append((begin, end, ast.unparse(flat).encode()))
    for begin, end, text in sorted(edits, reverse=True):
        source = source[:begin] + text + source[end:]
    return source


def write_flat_code(folder, module_names, package: str = PACKAGE) -> list[Path]:
    """Write into `folder` the modules of `package` that `module_names` need (themselves included), flat, each
    import of another of them rewritten as `from .<file name> import ...`; checks that transformers' loader
    resolves every such import of the written files. Returns the paths written."""
    from transformers.dynamic_module_utils import get_relative_imports

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    modules = code_files(module_names, package)
    by_file = {}
    for name, (path, _) in modules.items():
        other = by_file.setdefault(path.name, name)
        if other != name:
            raise ValueError(f"{other} and {name} have the same file name: a saved folder holds both, side by side.")
    written = []
    for name, (path, imports) in sorted(modules.items()):
        target = folder / path.name
        target.write_bytes(_rewrite(path.read_bytes(), imports))
        written.append(target)
    for target in written:
        for needed in get_relative_imports(target):
            if not (folder / f"{needed}.py").is_file():
                raise RuntimeError(
                    f"transformers' loader would look for {needed}.py next to {target.name} (a line `from .{needed} "
                    "import` in it, maybe in a docstring): the folder would not load as remote code."
                )
    return written


class RemoteCodeMixin:
    """For the classes registered for an Auto class (`register_for_auto_class`): `save_pretrained` also writes the
    code they need into the folder (`write_flat_code`), so that it loads with `trust_remote_code=True`."""

    def _remote_code_classes(self) -> list[type]:
        """The classes whose code a saved folder needs: the class itself (a processor adds its parts, a model its
        pipeline)."""
        return [type(self)]

    def save_pretrained(self, save_directory, *args, push_to_hub: bool = False, **kwargs):
        if push_to_hub:
            # transformers would upload the folder before the code below is written: save, then push (which saves
            # into a temporary folder through this method and uploads that).
            hub = {k: kwargs.pop(k) for k in ("repo_id", "commit_message", "create_pr", "private", "token") if k in kwargs}
            result = self.save_pretrained(save_directory, *args, **kwargs)
            self.push_to_hub(hub.pop("repo_id", Path(save_directory).name), **hub)
            return result
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if self._auto_class is not None:
            write_flat_code(save_directory, [cls.__module__ for cls in self._remote_code_classes()])
        return result


__all__ = ["RemoteCodeMixin", "code_files", "write_flat_code"]
