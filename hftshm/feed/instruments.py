"""Instruments travel with the data: what each symbol of a canonical tick CSV is, in a sidecar file.

``X.csv.gz`` -> ``X.csv.gz.instruments.json`` next to it, written by ``hftshm data import`` and read by
every reader (``data books|check|info``, ``backtest``, ``run``, ``exchange replay``):

    {"format": "hftshm-instruments", "version": 1, "data": "X.csv.gz",
     "instruments": [{"symbol": "ETHUSDT", "symbol_id": 1, "market": "spot", "tick_size": "0.01",
                      "lot_size": "0.0001", "contract_size": "1", "price_decimals": 2, "qty_decimals": 4,
                      "inferred_tick_size": "0.01", "inferred_lot_size": "0.0001"}, ...],
     "symbols": {"ETHUSDT": {"rows": {...}, "first_exch_ts_ns": ..., "last_exch_ts_ns": ..., ...}}}

A sidecar rather than a header line: the CSV stays the plain canonical format any tool reads, and the
facts about it (tick grid, market kind) are computed after all its rows are known.

- market: ``spot``; ``linear`` (USD-M: quantity in the coin, PnL in the quote); ``inverse`` (COIN-M:
  quantity in contracts of ``contract_size`` USD, PnL in the coin). From the recording: spot depth
  diffs carry no ``pu``; COIN-M symbols are ``<BASE>USD_PERP`` / ``<BASE>USD_<YYMMDD>``.
- tick/lot: the largest step dividing every observed price/quantity, computed exactly on the
  decimals (never on floats), or the user's override; an override the data is not on is an error.
- symbol ids: 1..n in symbol order within a file; merged with ``[symbols]`` of the config by
  ``resolve``: configured symbols keep their id and override tick/lot/market, data-only symbols keep
  their id when free (else take the next free one). A configured grid the data is not on, or a
  configured market that differs from the data's, is an ``InstrumentError``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Iterable

from hftshm.symbols import MARKETS, Symbol, SymbolTable

SIDECAR_SUFFIX = ".instruments.json"
FORMAT = "hftshm-instruments"
VERSION = 1
_INVERSE_NAME = re.compile(r"^[A-Z0-9]+USD_(PERP|\d{6})$")
# Binance COIN-M: BTC contracts are 100 USD, every other coin's 10 USD
_CONTRACT_USD = {"BTCUSD": Decimal(100)}
_DEFAULT_CONTRACT_USD = Decimal(10)


class InstrumentError(ValueError):
    """An instrument cannot be determined, or it disagrees with the data or the config."""


@dataclass(frozen=True)
class Instrument:
    symbol: str
    symbol_id: int
    market: str
    tick_size: str  # exact decimal text
    lot_size: str
    contract_size: str = "1"
    price_decimals: int = 0
    qty_decimals: int = 0
    inferred_tick_size: str = ""  # what the data alone supports (the override, if any, must divide it)
    inferred_lot_size: str = ""

    def to_symbol(self) -> Symbol:
        return Symbol(self.symbol, self.symbol_id, float(self.tick_size), float(self.lot_size),
                      market=self.market, contract_size=float(self.contract_size))


def sidecar_path(data: str | Path) -> Path:
    data = Path(data)
    return data.with_name(data.name + SIDECAR_SUFFIX)


def decimals_of(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    return max(0, -int(exponent))


def text_of(step: Decimal) -> str:
    """Positional decimal text without trailing zeros: Decimal('1E+1') -> '10', 0.0100 -> '0.01'."""
    text = format(step.normalize(), "f")
    return text


def step_from_e8(value: int) -> Decimal | None:
    """A gcd in units of 1e-8 (from the CSV scanner) as an exact decimal; None when nothing was seen."""
    return Decimal(value).scaleb(-8).normalize() if value > 0 else None


def parse_step(text: str, what: str) -> Decimal:
    try:
        step = Decimal(str(text).strip())
    except ArithmeticError:
        raise InstrumentError(f"{what} {text!r} is not a decimal number") from None
    if not step.is_finite() or step <= 0:
        raise InstrumentError(f"{what} {text!r} must be a positive decimal number")
    return step.normalize()


def on_grid(value: Decimal, step: Decimal) -> bool:
    return (value % step) == 0


def market_from_recording(symbol: str, has_depth: bool, depth_without_pu: bool) -> str:
    """spot / linear / inverse from what the recording showed (see the module docstring)."""
    if _INVERSE_NAME.match(symbol):
        return "inverse"
    if has_depth and depth_without_pu:
        return "spot"
    return "linear"


def default_contract_size(symbol: str, market: str) -> Decimal:
    if market != "inverse":
        return Decimal(1)
    base = symbol.split("_", 1)[0]
    return _CONTRACT_USD.get(base, _DEFAULT_CONTRACT_USD)


def parse_overrides(items: Iterable[str] | None, what: str) -> dict[str, str]:
    """``["ETHUSDT=0.01", ...]`` -> {"ETHUSDT": "0.01"}; a bare value applies to every symbol (key "*")."""
    out: dict[str, str] = {}
    for item in items or ():
        if "=" in item:
            name, value = item.split("=", 1)
            out[name.strip().upper()] = value.strip()
        else:
            out["*"] = item.strip()
    return out


def _override(overrides: dict[str, str], symbol: str) -> str | None:
    return overrides.get(symbol, overrides.get("*"))


def build_instruments(stats: dict, markets: dict[str, str], *, tick_sizes: dict | None = None,
                      lot_sizes: dict | None = None, contract_sizes: dict | None = None,
                      market_overrides: dict | None = None) -> list[Instrument]:
    """Instruments from a scan's per-symbol statistics (``RowReport.symbol_stats`` with exact gcds) and
    the market kinds the import saw; overrides win but must agree with the data's grid."""
    tick_sizes, lot_sizes = tick_sizes or {}, lot_sizes or {}
    contract_sizes, market_overrides = contract_sizes or {}, market_overrides or {}
    for overrides, what in ((tick_sizes, "--tick-size"), (lot_sizes, "--lot-size"),
                            (contract_sizes, "--contract-size"), (market_overrides, "--market")):
        unknown = sorted(set(overrides) - set(stats) - {"*"})
        if unknown:
            raise InstrumentError(f"{what} names {', '.join(unknown)}, not in the data "
                                  f"(symbols: {', '.join(sorted(stats)) or 'none'})")
    out = []
    for symbol_id, symbol in enumerate(sorted(stats), 1):
        s = stats[symbol]
        inferred_tick = step_from_e8(s["price_gcd_e8"])
        # the largest step dividing every quantity seen, not the exchange's order lot: the data must
        # sit on the grid the book checks it against. Binance spot ETHUSDT's order lot is 0.0001, yet
        # its depth stream has levels far from the touch holding 2292.22972 and 47.50196 (asks at
        # 5000 and 5300; resting orders from before a step change, presumably): gcd 0.00002, the
        # data's real grid. --lot-size 0.0001 is refused there as off-grid, naming the line
        inferred_lot = step_from_e8(s["qty_gcd_e8"])
        market = _override(market_overrides, symbol) or markets.get(symbol) or market_from_recording(symbol, False, False)
        if market not in MARKETS:
            raise InstrumentError(f"--market {market!r} for {symbol}; allowed: {', '.join(MARKETS)}")
        tick = _checked_step(symbol, "tick size", "--tick-size", _override(tick_sizes, symbol), inferred_tick, "prices")
        lot = _checked_step(symbol, "lot size", "--lot-size", _override(lot_sizes, symbol), inferred_lot,
                            "quantities")
        contract_text = _override(contract_sizes, symbol)
        contract = (parse_step(contract_text, f"--contract-size for {symbol}") if contract_text
                    else default_contract_size(symbol, market))
        if market != "inverse" and contract != 1:
            raise InstrumentError(f"{symbol}: a contract size ({text_of(contract)}) applies to inverse "
                                  f"(COIN-M) instruments only; {symbol} is {market}")
        out.append(Instrument(
            symbol=symbol, symbol_id=symbol_id, market=market, tick_size=text_of(tick), lot_size=text_of(lot),
            contract_size=text_of(contract), price_decimals=decimals_of(tick), qty_decimals=decimals_of(lot),
            inferred_tick_size=text_of(inferred_tick) if inferred_tick else "",
            inferred_lot_size=text_of(inferred_lot) if inferred_lot else ""))
    return out


def _checked_step(symbol: str, what: str, flag: str, override: str | None, inferred: Decimal | None,
                  values: str) -> Decimal:
    if override is None:
        if inferred is None:
            raise InstrumentError(f"{symbol}: no {values} in the data to infer the {what} from; give {flag} "
                                  f"{symbol}=STEP")
        return inferred
    step = parse_step(override, f"{flag} for {symbol}")
    if inferred is not None and not on_grid(inferred, step):
        raise OffGridError(symbol, what, step, inferred)
    return step


class OffGridError(InstrumentError):
    """The data is not on a grid it was said to be on (importers name the recording line they find it on)."""

    def __init__(self, symbol: str, what: str, step: Decimal, inferred: Decimal):
        self.symbol, self.what, self.step, self.inferred = symbol, what, step, inferred
        super().__init__(f"{symbol}: {what} {text_of(step)} does not fit the data, whose values are on a "
                         f"{text_of(inferred)} grid")


def first_off_grid(path: str | Path, symbol: str, column: int, step: Decimal) -> tuple[int, str] | None:
    """(line, value) of the first row of ``symbol`` whose column is not a multiple of ``step`` (error path
    only: a plain Python scan)."""
    from hftshm.feed.ticks import open_binary

    with open_binary(path, "rb", gzipped=_is_gzip(path)) as handle:
        for line_no, raw in enumerate(handle, 1):
            fields = raw.decode(errors="replace").rstrip("\r\n").split(",")
            if line_no == 1 or len(fields) != 8 or fields[2] != symbol or fields[3] == "clear":
                continue
            try:
                value = Decimal(fields[column])
            except ArithmeticError:
                continue
            if value != 0 and not on_grid(value, step):
                return line_no, fields[column]
    return None


def _is_gzip(path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


# --------------------------------------------------------------------- scanning a CSV


def scan_csv(path: str | Path, names: Iterable[str] | None = None):
    """(symbol stats with exact gcds, RowReport) of a canonical CSV; ``names`` are its symbols (found by a
    first pass when not given)."""
    from hftshm.feed.tickcsv import RowReport, iter_records

    if names is None:
        names = symbols_in_csv(path)
    names = sorted(set(names))
    provisional = SymbolTable([Symbol(name, k, 1e-8, 1e-8) for k, name in enumerate(names, 1)])
    report = RowReport(str(path))
    for _block in iter_records(path, provisional, report=report):
        pass
    stats = {}
    for name, s in report.symbol_stats.items():
        stats[name] = {
            "rows": s["rows"],
            "price_gcd_e8": s.get("price_gcd_e8", 0),
            "qty_gcd_e8": s.get("qty_gcd_e8", 0),
            "printed_price_decimals": s["price_decimals"],
            "printed_qty_decimals": s["qty_decimals"],
            "first_exch_ts_ns": s["first_exch_ts_ns"], "last_exch_ts_ns": s["last_exch_ts_ns"],
            "first_local_ts_ns": s["first_local_ts_ns"], "last_local_ts_ns": s["last_local_ts_ns"],
        }
    return stats, report


def symbols_in_csv(path: str | Path) -> list[str]:
    """The symbol column's distinct values (a plain pass; for files without a sidecar)."""
    from hftshm.feed.ticks import open_binary

    seen: set[bytes] = set()
    with open_binary(path, "rb", gzipped=_is_gzip(path)) as handle:
        handle.readline()
        previous = b""
        for raw in handle:
            parts = raw.split(b",", 3)
            if len(parts) > 3 and parts[2] != previous:
                previous = parts[2]
                seen.add(previous)
    return sorted(s.decode(errors="replace").upper() for s in seen if s)


def record_instruments(tmp_path: Path, out_path: Path, names: Iterable[str], markets: dict[str, str],
                       overrides: dict, extra: dict | None = None) -> list[Instrument]:
    """An importer's last step: scan the rows written to ``tmp_path``, infer each symbol's instrument
    (overrides applied; OffGridError when one does not fit), and write the sidecar for ``out_path``
    (before the output is renamed into place, so a reader never sees data without its instruments)."""
    stats, _report = scan_csv(tmp_path, names)
    found = build_instruments(stats, markets, tick_sizes=overrides.get("tick_size"),
                              lot_sizes=overrides.get("lot_size"), contract_sizes=overrides.get("contract_size"),
                              market_overrides=overrides.get("market"))
    write_sidecar(out_path, found, stats, extra)
    return found


# --------------------------------------------------------------------- sidecar files


def write_sidecar(data: str | Path, instruments: list[Instrument], stats: dict, extra: dict | None = None) -> Path:
    """Write ``<data>.instruments.json`` (via a .partial, renamed)."""
    path = sidecar_path(data)
    body = {"format": FORMAT, "version": VERSION, "data": Path(data).name,
            "instruments": [asdict(i) for i in instruments], "symbols": stats}
    if extra:
        body.update(extra)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_sidecar(data: str | Path) -> dict | None:
    """The sidecar of ``data`` (None when it has none)."""
    path = sidecar_path(data)
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InstrumentError(f"{path}: unreadable instruments file ({exc})") from None
    if body.get("format") != FORMAT or body.get("version") != VERSION:
        raise InstrumentError(f"{path}: not an instruments file of version {VERSION}")
    return body


def instruments_of(data: str | Path, *, scan: bool = True) -> list[Instrument]:
    """The instruments of a canonical CSV: its sidecar, else (``scan``) inferred from the rows."""
    body = read_sidecar(data)
    if body is not None:
        fields = set(Instrument.__dataclass_fields__)
        return [Instrument(**{k: v for k, v in item.items() if k in fields}) for item in body["instruments"]]
    if not scan or not Path(data).is_file():
        return []
    stats, _report = scan_csv(data)
    return build_instruments(stats, {})


def resolve(config: SymbolTable | None, instruments: Iterable[Instrument], source: str = "the data") -> SymbolTable:
    """The symbol table for a run: the data's instruments merged with ``[symbols]`` (config overrides)."""
    instruments = list(instruments)
    configured = list(config) if config is not None else []
    if config is not None and config.fallback:  # built-in defaults: the data's own instruments win
        in_data = {i.symbol for i in instruments}
        configured = [s for s in configured if s.name not in in_data]
    by_name = {s.name: s for s in configured}
    used_ids = {s.symbol_id for s in configured}
    out = list(configured)
    merged: dict[str, Instrument] = {}
    for inst in instruments:
        previous = merged.get(inst.symbol)
        if previous is not None:
            if (previous.market, previous.tick_size, previous.lot_size, previous.contract_size) != (
                    inst.market, inst.tick_size, inst.lot_size, inst.contract_size):
                raise InstrumentError(f"{inst.symbol} is described twice, differently, in {source}: "
                                      f"{_describe(previous)} vs {_describe(inst)}")
            continue
        merged[inst.symbol] = inst
    for inst in sorted(merged.values(), key=lambda i: (i.symbol_id, i.symbol)):
        cfg = by_name.get(inst.symbol)
        if cfg is not None:
            _check_agrees(cfg, inst, config, source)
            index = out.index(cfg)
            market = cfg.market if _explicit(config, cfg.name, "market") else inst.market
            contract = (cfg.contract_size if _explicit(config, cfg.name, "contract_size")
                        else float(inst.contract_size))
            out[index] = replace(cfg, market=market, contract_size=contract)
            continue
        symbol_id = inst.symbol_id
        if symbol_id in used_ids:
            symbol_id = max(used_ids) + 1
        used_ids.add(symbol_id)
        out.append(replace(inst.to_symbol(), symbol_id=symbol_id))
    return SymbolTable(out, explicit=getattr(config, "explicit", None))


def _explicit(config: SymbolTable | None, name: str, key: str) -> bool:
    return config is not None and key in config.explicit.get(name, ())


def _check_agrees(cfg: Symbol, inst: Instrument, config: SymbolTable | None, source: str) -> None:
    for what, configured, data_step in (("tick_size", cfg.tick_size, inst.tick_size),
                                        ("lot_size", cfg.lot_size, inst.lot_size)):
        step = Decimal(repr(configured)).normalize()
        if not on_grid(Decimal(data_step), step):
            raise InstrumentError(
                f"[symbols.{cfg.name}] {what} = {text_of(step)} disagrees with {source}: its {inst.market} "
                f"{cfg.name} is on a {data_step} grid, not a multiple of {text_of(step)} (fix or remove "
                f"[symbols.{cfg.name}] {what}, or re-import with the right --{what.replace('_', '-')})")
    if _explicit(config, cfg.name, "market") and cfg.market != inst.market:
        raise InstrumentError(f"[symbols.{cfg.name}] market = {cfg.market!r} disagrees with {source}: "
                              f"it holds {inst.market} {cfg.name}")
    if (_explicit(config, cfg.name, "contract_size") and inst.market == "inverse"
            and Decimal(repr(cfg.contract_size)) != Decimal(inst.contract_size)):
        raise InstrumentError(f"[symbols.{cfg.name}] contract_size = {cfg.contract_size} disagrees with "
                              f"{source}: {inst.contract_size}")


def _describe(inst: Instrument) -> str:
    return f"{inst.market} tick {inst.tick_size} lot {inst.lot_size} contract {inst.contract_size}"


def symbols_for_data(paths: Iterable[str | Path], config: SymbolTable | None, *, scan: bool = True) -> SymbolTable:
    """``resolve`` over the instruments of several data files (sidecars; rows scanned where none)."""
    instruments: list[Instrument] = []
    names = []
    for path in paths:
        names.append(str(path))
        instruments.extend(instruments_of(path, scan=scan))
    return resolve(config, instruments, source=", ".join(names) or "the data")
