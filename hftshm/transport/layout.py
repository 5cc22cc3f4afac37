"""Record layouts: the declarations in ``layouts/*.toml`` turned into numpy dtypes and fingerprints.

A layout's dtype has explicit offsets and an explicit itemsize. Padding is never a field (numba
rejects ``V`` fields); it is the gap up to the declared offset or itemsize. The fingerprint hashes
name, version, every field's name/type/shape/offset and the itemsize, so two processes agree on a
record's bytes exactly when their fingerprints agree. Rings store it and refuse a mismatched attach.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

_ALLOWED_TYPES = ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8")


class LayoutError(ValueError):
    """A layout declaration is malformed (overlap, bad type, offset past itemsize, ...)."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    offset: int
    shape: tuple[int, ...]
    doc: str

    @property
    def size(self) -> int:
        count = 1
        for extent in self.shape:
            count *= extent
        return np.dtype(self.type).itemsize * count


@dataclass(frozen=True)
class Layout:
    name: str
    version: int
    itemsize: int
    fields: tuple[Field, ...]
    doc: str

    @property
    def dtype(self) -> np.dtype:
        return _dtype_of(self)

    @property
    def fingerprint(self) -> int:
        """63-bit hash of everything that decides the record's bytes (fits an int64 header word)."""
        text = f"{self.name}|{self.version}|{self.itemsize}|" + "|".join(
            f"{f.name}:{f.type}:{f.shape}:{f.offset}" for f in self.fields
        )
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF

    def describe(self) -> str:
        return f"{self.name} v{self.version} ({self.fingerprint:016x})"

    def zeros(self, n: int) -> np.ndarray:
        return np.zeros(n, dtype=self.dtype)


@cache
def _dtype_of(layout: Layout) -> np.dtype:
    return np.dtype(
        {
            "names": [f.name for f in layout.fields],
            "formats": [(f.type, f.shape) if f.shape else f.type for f in layout.fields],
            "offsets": [f.offset for f in layout.fields],
            "itemsize": layout.itemsize,
        },
        align=False,
    )


def parse_layout(text: str, source: str = "<string>") -> Layout:
    """Parse and check one TOML declaration; errors name the file and the field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LayoutError(f"{source}: not valid TOML: {exc}") from exc
    for key in ("name", "version", "itemsize", "fields"):
        if key not in raw:
            raise LayoutError(f"{source}: missing key '{key}'")
    fields = []
    for entry in raw["fields"]:
        ftype = entry.get("type")
        if ftype not in _ALLOWED_TYPES:
            raise LayoutError(
                f"{source}: field '{entry.get('name')}' has type {ftype!r}; allowed: {', '.join(_ALLOWED_TYPES)}"
            )
        fields.append(Field(entry["name"], ftype, int(entry["offset"]), tuple(entry.get("shape", ())), entry.get("doc", "")))
    layout = Layout(raw["name"], int(raw["version"]), int(raw["itemsize"]), tuple(fields), raw.get("doc", ""))
    _check(layout, source)
    return layout


def _check(layout: Layout, source: str) -> None:
    end = 0
    for field in sorted(layout.fields, key=lambda f: f.offset):
        align = np.dtype(field.type).itemsize
        if field.offset % align:
            raise LayoutError(f"{source}: field '{field.name}' at offset {field.offset} is not {align}-byte aligned")
        if field.offset < end:
            raise LayoutError(f"{source}: field '{field.name}' at offset {field.offset} overlaps the previous field")
        end = field.offset + field.size
    if end > layout.itemsize:
        raise LayoutError(f"{source}: fields end at byte {end}, past itemsize {layout.itemsize}")
    if layout.itemsize % 8:
        raise LayoutError(f"{source}: itemsize {layout.itemsize} is not a multiple of 8")


@cache
def load(name: str) -> Layout:
    """The layout declared in ``layouts/<name>.toml``."""
    path = resources.files("layouts").joinpath(f"{name}.toml")
    if not path.is_file():
        raise LayoutError(f"no layout named {name!r}; declared: {', '.join(names())}")
    return parse_layout(path.read_text(), f"layouts/{name}.toml")


def names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("layouts").iterdir() if p.name.endswith(".toml"))


def all_layouts() -> list[Layout]:
    return [load(n) for n in names()]
