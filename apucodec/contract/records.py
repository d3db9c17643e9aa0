"""JSON object <-> dataclass, for the sections of the model manifest.

The manifest's format (version 2) predates these classes and is shared by every model directory already written, so
a record must read any such object and write it back with the same keys: known keys become typed fields, keys this
apucodec does not know are kept in `extra` and written back untouched, and a field left at None is absent from the
JSON (a JSON null is kept in `extra`, so it survives a round trip too). Nested records and lists of records are
converted by the `PARSERS` of each class.

Records are read by attribute only. They used to read like the JSON dicts they replaced (`entry["graph"]`), which
serialised the record on every lookup and let code read keys that do not exist at that level (the dataset read a
top-level `quantization` that only exists per file) without any error until run time; `to_dict` is the one way to
get JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")


def to_json(value: Any) -> Any:
    """A record, or containers of records, as plain JSON values (tuples become lists)."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


@dataclass
class Record:
    """Base of the manifest's typed sections (see the module docstring)."""

    # key -> converter from its JSON value (a converter also accepts an already typed value)
    PARSERS: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    # fields that are not JSON keys of this object (e.g. a file entry's stage name from its parent's key)
    NOT_JSON: ClassVar[tuple[str, ...]] = ()
    # JSON key order of a record made in code (one read from JSON keeps the order it was read in)
    ORDER: ClassVar[tuple[str, ...]] = ()

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)
    key_order: tuple[str, ...] = field(default=(), kw_only=True, repr=False, compare=False)

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any], **context: Any) -> R:
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
        known = set(cls.json_fields())
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in known and value is not None:
                parse = cls.PARSERS.get(key)
                values[key] = parse(value) if parse else value
            else:
                extra[key] = value
        return cls(**values, **context, extra=extra, key_order=tuple(data))

    @classmethod
    def parse(cls: type[R], value: Any) -> R:
        """A converter for PARSERS: `value` as this record (typed values pass through)."""
        return cls.from_dict(value)

    def to_dict(self) -> dict[str, Any]:
        out = {name: to_json(getattr(self, name)) for name in self.json_fields() if getattr(self, name) is not None}
        out.update(self.extra)
        order = self.key_order or self.ORDER
        return {**{k: out[k] for k in order if k in out}, **out}

    @classmethod
    def json_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name not in ("extra", "key_order", *cls.NOT_JSON))


def parse_list(parser: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    return lambda data: [parser(v) for v in data]
