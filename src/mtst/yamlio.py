"""YAML in: PyYAML's safe loader, refusing a key given twice in one mapping (which it would let the last one win)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names the same key twice; ``line`` and ``first_line`` (1-based) say where."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"line {line}: duplicate key {key!r} (first at line {first_line}); keep one of them.")
        self.key, self.line, self.first_line = key, line, first_line


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises ``DuplicateKeyError`` for a key repeated in one mapping.

    Keys brought in by a ``<<:`` merge may be overridden, as YAML intends; only keys written twice are refused.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first:
                raise DuplicateKeyError(key, line, first[key])
            first[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> Any:
    """Parse YAML text with ``UniqueKeyLoader`` (errors are ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file; malformed YAML or a duplicate key is a ``ValueError`` naming the file and the line."""
    path = Path(path)
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except DuplicateKeyError as e:
        raise ValueError(f"{path}, {e}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: malformed YAML: {e}") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start}); save the file as UTF-8.") from e
