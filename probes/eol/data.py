"""The end-of-life data file: model, validation, load/write, refresh from an export.

``probes/eol/eol.json`` keeps, per product, endoflife.date's cycle records
(``cycle``, ``releaseDate``, ``eol``, ``latest``, ``link``) plus what posture
needs to recognise the product in a banner (``aliases``) and to compare
versions (``versioning``). The file says when it was compiled and from where;
every import from a user-supplied export is recorded in ``imports``.

Pure apart from :func:`load_eol_data` and :func:`write_eol_data`.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from probes.outfile import write_output
from vocab import DataFileError, parses_data_file

FORMAT = 1


class Versioning(enum.StrEnum):
    NUMERIC = "numeric"  # 1.1.1w, 7.4p1: cycles are leading numeric components
    NAME = "name"  # "2012 R2": cycles are words


@dataclass(frozen=True)
class Cycle:
    cycle: str
    eol: dt.date | bool  # a date, or true/false when the source gives no date
    release_date: dt.date | None = None
    latest: str | None = None
    link: str | None = None
    note: str | None = None  # why this date, where posture derived it

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cycle": self.cycle}
        if self.release_date is not None:
            out["releaseDate"] = self.release_date.isoformat()
        out["eol"] = self.eol if isinstance(self.eol, bool) else self.eol.isoformat()
        for key, value in (("latest", self.latest), ("link", self.link), ("note", self.note)):
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class Product:
    key: str  # endoflife.date's product id where it has one: "nginx", "apache-http-server"
    name: str
    aliases: tuple[str, ...]  # lower-case names banners use, CPE vendor:product prefixes
    versioning: Versioning
    source: str
    cycles: tuple[Cycle, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "versioning": self.versioning.value,
            "source": self.source,
            "cycles": [c.to_json() for c in self.cycles],
        }


@dataclass(frozen=True)
class ImportRecord:
    date: dt.date
    source: str
    products: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"date": self.date.isoformat(), "source": self.source, "products": list(self.products)}


@dataclass(frozen=True)
class EolData:
    updated: dt.date  # when the data was compiled or last imported
    source: str
    products: Mapping[str, Product]
    imports: tuple[ImportRecord, ...] = field(default=())

    @cached_property
    def _by_alias(self) -> dict[str, Product]:
        index: dict[str, Product] = {}
        for product in self.products.values():
            for name in (product.key, product.name, *product.aliases):
                index.setdefault(name.lower(), product)
        return index

    def product_for(self, name: str) -> Product | None:
        """The product a banner's name stands for (key, name or alias; case-insensitive)."""
        return self._by_alias.get(name.strip().lower())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "updated": self.updated.isoformat(),
            "source": self.source,
            "imports": [i.to_json() for i in self.imports],
            "products": {k: p.to_json() for k, p in sorted(self.products.items())},
        }


# ---------------------------------------------------------------- parsing


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            pass
    raise DataFileError(f"{where}: expected a YYYY-MM-DD date, got {value!r}")


def _eol(value: Any, where: str) -> dt.date | bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            pass
    raise DataFileError(f"{where}: eol must be true, false or a YYYY-MM-DD date, got {value!r}")


def _text(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if isinstance(value, bool | float):
        # 1.10 read as a JSON number is 1.1: refuse rather than guess.
        raise DataFileError(f"{where}: expected a string, got the number {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and (value.strip() or not required):
        return value.strip()
    raise DataFileError(f"{where}: expected a non-empty string, got {value!r}")


def parse_cycle(raw: Any, where: str) -> Cycle:
    """One cycle in endoflife.date's API v0 shape (``cycle``, ``eol``, ``releaseDate``...)."""
    if not isinstance(raw, Mapping):
        raise DataFileError(f"{where}: expected an object, got {type(raw).__name__}")
    cycle = _text(raw.get("cycle"), f"{where}.cycle", required=True)
    assert cycle is not None
    if "eol" not in raw:
        raise DataFileError(f"{where} ({cycle}): no eol")
    release = raw.get("releaseDate")
    return Cycle(
        cycle=cycle,
        eol=_eol(raw["eol"], f"{where} ({cycle}).eol"),
        release_date=_date(release, f"{where} ({cycle}).releaseDate") if release is not None else None,
        latest=_text(raw.get("latest"), f"{where} ({cycle}).latest"),
        link=_text(raw.get("link"), f"{where} ({cycle}).link"),
        note=_text(raw.get("note"), f"{where} ({cycle}).note"),
    )


def _cycles(raw: Any, where: str) -> tuple[Cycle, ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise DataFileError(f"{where}: expected a non-empty list of cycles")
    cycles = tuple(parse_cycle(c, f"{where}[{i}]") for i, c in enumerate(raw))
    seen: set[str] = set()
    for c in cycles:
        if c.cycle in seen:
            raise DataFileError(f"{where}: cycle {c.cycle!r} appears twice")
        seen.add(c.cycle)
    return cycles


@parses_data_file("eol data")
def parse_eol_data(raw: Any) -> EolData:
    """Validate a decoded ``eol.json``."""
    if not isinstance(raw, Mapping):
        raise DataFileError("eol data: expected a JSON object")
    if raw.get("format") != FORMAT:
        raise DataFileError(f"eol data: unsupported format {raw.get('format')!r} (expected {FORMAT})")
    products: dict[str, Product] = {}
    raw_products = raw.get("products")
    if not isinstance(raw_products, Mapping) or not raw_products:
        raise DataFileError("eol data: products must be a non-empty object")
    for key, p in raw_products.items():
        where = f"products.{key}"
        if not isinstance(p, Mapping):
            raise DataFileError(f"{where}: expected an object")
        try:
            versioning = Versioning(p.get("versioning", "numeric"))
        except ValueError:
            raise DataFileError(f"{where}.versioning: expected numeric or name") from None
        aliases = p.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise DataFileError(f"{where}.aliases: expected a list of strings")
        products[key] = Product(
            key=key,
            name=_text(p.get("name", key), f"{where}.name", required=True) or key,
            aliases=tuple(a.lower() for a in aliases),
            versioning=versioning,
            source=_text(p.get("source"), f"{where}.source", required=True) or "",
            cycles=_cycles(p.get("cycles"), f"{where}.cycles"),
        )
    imports = []
    for i, rec in enumerate(raw.get("imports", [])):
        if not isinstance(rec, Mapping):
            raise DataFileError(f"imports[{i}]: expected an object")
        imports.append(
            ImportRecord(
                date=_date(rec.get("date"), f"imports[{i}].date"),
                source=_text(rec.get("source"), f"imports[{i}].source", required=True) or "",
                products=tuple(str(x) for x in rec.get("products", [])),
            )
        )
    return EolData(
        updated=_date(raw.get("updated"), "eol data: updated"),
        source=_text(raw.get("source"), "eol data: source", required=True) or "",
        products=products,
        imports=tuple(imports),
    )


# ---------------------------------------------------------------- files


def load_eol_data(path: str | Path | None = None) -> EolData:
    """The data file at ``path``, or the one shipped with posture."""
    if path is None:
        return default_eol_data()
    from probes.files import DATA_MAX, FileRefused, read_text_capped

    try:
        text = read_text_capped(path, DATA_MAX)
    except FileRefused as exc:
        raise DataFileError(f"cannot read {exc}") from None
    return _parse_text(text, str(path))


@cache
def default_eol_data() -> EolData:
    text = resources.files("probes.eol").joinpath("eol.json").read_text("utf-8")
    return _parse_text(text, "probes/eol/eol.json")


def _parse_text(text: str, name: str) -> EolData:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{name}: not JSON: {exc.msg} at line {exc.lineno}") from None
    return parse_eol_data(raw)


def write_eol_data(path: str | Path, data: EolData) -> None:
    """Write ``data`` to ``path`` as :func:`probes.outfile.write_output` does: atomically for a file
    (a reader never sees half a file), through a symbolic link or a device; its errors are its own."""
    write_output(path, (json.dumps(data.to_json(), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


# ---------------------------------------------------------------- refresh

_META_KEYS = frozenset({"schema_version", "generated_at", "last_modified"})


def _v1_release(raw: Any, where: str) -> dict[str, Any]:
    """An endoflife.date API v1 release, in the v0 shape :func:`parse_cycle` reads."""
    if not isinstance(raw, Mapping):
        raise DataFileError(f"{where}: expected an object")
    latest_raw = raw.get("latest")
    latest: Mapping[str, Any] = latest_raw if isinstance(latest_raw, Mapping) else {}
    eol: Any = raw.get("eolFrom") if raw.get("eolFrom") is not None else raw.get("isEol")
    return {
        "cycle": raw.get("name"),
        "eol": eol,
        "releaseDate": raw.get("releaseDate"),
        "latest": latest.get("name"),
        "link": latest.get("link"),
    }


def _v1_product(raw: Mapping[str, Any], where: str) -> tuple[str, list[Any]]:
    result = raw.get("result", raw)
    if not isinstance(result, Mapping) or not isinstance(result.get("releases"), list):
        raise DataFileError(f"{where}: expected an endoflife.date product with releases")
    name = _text(result.get("name"), f"{where}.name", required=True) or ""
    return name, [_v1_release(r, f"{where}.releases[{i}]") for i, r in enumerate(result["releases"])]


def export_products(export: Mapping[str, Any] | list[Any]) -> list[tuple[str, list[Any]]]:
    """``(product, raw cycles)`` from an export in any shape endoflife.date serves.

    * ``{"nginx": [{"cycle": "1.28", "eol": false, ...}, ...], ...}``: API v0
      (``/api/nginx.json``) responses keyed by product;
    * ``{"nginx": {"result": {"name": "nginx", "releases": [...]}}, ...}``: API v1
      (``/api/v1/products/nginx``) responses keyed by product;
    * ``[{"name": "nginx", "releases": [...]}, ...]`` or a single v1 response.
    """
    if isinstance(export, Mapping):
        if "result" in export:
            return [_v1_product(export, "export")]
        out: list[tuple[str, list[Any]]] = []
        for key, value in export.items():
            if key in _META_KEYS:
                continue
            if isinstance(value, list):
                out.append((key, value))
            elif isinstance(value, Mapping):
                _, cycles = _v1_product(value, str(key))
                out.append((key, cycles))
            else:
                raise DataFileError(f"{key}: expected a list of cycles or an endoflife.date product")
        return out
    if isinstance(export, list):
        products = []
        for i, item in enumerate(export):
            if not isinstance(item, Mapping):
                raise DataFileError(f"export[{i}]: expected an endoflife.date product object")
            products.append(_v1_product(item, f"export[{i}]"))
        return products
    raise DataFileError("export: expected a JSON object or list")


def refresh_from_export(
    export_json: Mapping[str, Any] | list[Any],
    existing: EolData,
    *,
    source: str = "user-supplied endoflife.date export",
    imported_on: dt.date | None = None,
) -> EolData:
    """``existing`` with every product in the export replaced by the export's cycles.

    Products are matched by key or alias (``apache`` and ``httpd`` are
    apache-http-server); a product posture does not know is added with its
    key as its only alias. Products the export leaves out are kept as they
    were. The whole export is validated before anything changes; the import
    is recorded with its date and ``source``.
    """
    when = imported_on or dt.date.today()
    entries = export_products(export_json)
    if not entries:
        raise DataFileError("export: no products")
    products = dict(existing.products)
    touched: list[str] = []
    for name, raw_cycles in entries:
        cycles = _cycles(raw_cycles, str(name))
        current = existing.product_for(str(name))
        note = f"{source} (imported {when.isoformat()})"
        if current is not None:
            updated = replace(current, cycles=cycles, source=note)
        else:
            key = str(name).strip().lower()
            numeric = all(c.cycle[:1].isdigit() for c in cycles)
            updated = Product(
                key=key,
                name=str(name),
                aliases=(key,),
                versioning=Versioning.NUMERIC if numeric else Versioning.NAME,
                source=note,
                cycles=cycles,
            )
        if updated.key in touched:
            raise DataFileError(f"export: {name} names product {updated.key!r} a second time")
        products[updated.key] = updated
        touched.append(updated.key)
    record = ImportRecord(date=when, source=source, products=tuple(touched))
    return EolData(
        updated=when,
        source=existing.source,
        products=products,
        imports=(*existing.imports, record),
    )
