"""A backtest's result: the figures, the equity curve, and the report files (JSON + HTML).

Definitions (the report repeats them, so a reader need not come here):

* equity = realized PnL + open position marked at the mid - fees, sampled every
  ``equity_interval_ms`` of market time;
* Sharpe = mean / standard deviation of the per-sample equity changes, annualised with
  sqrt(samples per 365-day year) (crypto trades every day); PnL-based, so no capital assumption;
* max drawdown = the largest fall of equity from a running peak, quote currency;
* fill ratio = executed quantity / quantity sent in new orders;
* turnover = executed notional, quote currency (and executed quantity, base units).

Units follow the instrument (``units``: ``hftshm.units``): on spot and linear (USD-M) markets
quantities are in the base asset and money in the quote currency; on inverse (COIN-M) markets
quantities are contracts of a fixed USD size and PnL, fees, drawdown and turnover are in the coin.
Every figure's label says its unit. Several symbols: ``symbols`` has each one's figures in its own
units, ``currencies`` the money figures added up per settlement currency. Symbols settling in
different currencies are never added: the top-level money figures (PnL, fees, turnover, equity,
Sharpe, drawdown) are then null, and the equity curve is one per currency.

The HTML page is self-contained (inline SVG, no scripts, no network): it opens from a file.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

SECONDS_PER_YEAR = 365 * 86400
FILL_DTYPE = np.dtype([
    ("exch_ts_ns", "i8"), ("client_order_id", "i8"), ("side", "i1"), ("price", "f8"), ("qty", "f8"), ("fee", "f8"),
])


@dataclass
class BacktestResult:
    strategy: str
    params: dict[str, Any]
    seed: int
    data: str
    engine: str  # "compiled" (the strategy's kernel in the compiled loop) or "python"
    rows: int
    elapsed_s: float
    start_ns: int
    end_ns: int
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    net_pnl: float
    position: float
    sharpe: float
    max_drawdown: float
    trades: int
    orders_sent: int
    cancels: int
    rejects: int
    fill_ratio: float
    traded_qty: float
    turnover: float
    latency_model: dict[str, Any]
    fill_model: str
    equity_interval_ms: float
    equity_ts_ns: np.ndarray = field(repr=False)
    equity: np.ndarray = field(repr=False)
    fills: np.ndarray = field(repr=False)
    reject_reasons: dict[str, int] = field(default_factory=dict)
    strategy_summary: dict[str, Any] = field(default_factory=dict)
    symbol: str = ""
    market: str = "linear"  # spot, linear (USD-M) or inverse (COIN-M)
    #: units of the figures: qty (position, traded quantity), pnl (PnL, fees, equity, drawdown),
    #: notional (turnover), contract_usd (inverse only); ``hftshm.units.Units.as_dict``
    units: dict[str, Any] = field(default_factory=dict)
    #: per symbol: market, currency, units, strategies, orders sent, position (the symbol's units), PnL,
    #: fees, trades (fills), cancels, rejects
    symbols: dict[str, dict] = field(default_factory=dict)
    #: per settlement currency: its symbols, realized/unrealized/net PnL, fees, turnover, equity (last),
    #: sharpe, max drawdown, orders sent, trades
    currencies: dict[str, dict] = field(default_factory=dict)
    #: several settlement currencies: currency -> equity samples at ``equity_ts_ns`` (``equity`` is empty)
    equity_by_currency: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: the strategy object after the run (its own state: decisions, counters), not written to reports
    instance: Any = field(default=None, repr=False, compare=False)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else math.nan

    def to_dict(self, curve: bool = True) -> dict[str, Any]:
        skip = ("equity_ts_ns", "equity", "equity_by_currency", "fills", "instance")
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        out = json.loads(json.dumps(out, default=_plain))
        out["rows_per_s"] = self.rows_per_s
        out["duration_s"] = (self.end_ns - self.start_ns) / 1e9
        out["definitions"] = DEFINITIONS
        if curve:
            out["equity_curve"] = {"ts_ns": self.equity_ts_ns.tolist()}
            if self.equity_by_currency:
                out["equity_curve"]["by_currency"] = {c: v.tolist() for c, v in self.equity_by_currency.items()}
            else:
                out["equity_curve"]["equity"] = self.equity.tolist()
        return _finite(out)

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``report.json``, ``report.html`` and ``fills.csv`` into ``out_dir``; their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "report.json", "html": out / "report.html", "fills": out / "fills.csv"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        paths["html"].write_text(render_html(self))
        with paths["fills"].open("w") as fh:
            fh.write("exch_ts_ns,client_order_id,side,price,qty,fee\n")
            for f in self.fills:
                side = "buy" if f["side"] == 1 else "sell"
                fh.write(f"{f['exch_ts_ns']},{f['client_order_id']},{side},{f['price']!r},{f['qty']!r},{f['fee']!r}\n")
        return paths


DEFINITIONS = {
    "equity": "realized PnL + position marked at mid - fees, in units.pnl (the quote currency; the coin on an "
              "inverse market)",
    "sharpe": "mean/std of per-sample equity changes, annualised by sqrt(samples per 365-day year)",
    "max_drawdown": "largest fall of equity from its running peak, in units.pnl",
    "fill_ratio": "executed quantity / quantity sent in new orders",
    "turnover": "executed notional, in units.notional (inverse: contracts x contract size / price, the coin)",
    "currencies": "the money figures of the symbols settling in each currency, added up; different currencies "
                  "are never added (the top-level money figures are then null)",
}


def figures(d: dict) -> list[tuple[str, Any]]:
    """(label with its unit, value) of a result's headline figures (``to_dict`` output), in the order the
    CLI and the HTML page show them."""
    units = d.get("units") or {}
    money = f" ({units['pnl']})" if units.get("pnl") else ""
    qty = units.get("qty", "")
    if units.get("contract_usd"):
        qty = f"{qty} of {units['contract_usd']:g} USD"
    qty = f" ({qty})" if qty else ""
    notional = f", {units['notional']}" if units.get("notional") else ""
    currencies = d.get("currencies") or {}
    if len(currencies) > 1:  # per currency: never one sum of two currencies
        money_rows = [(f"{label} ({currency})", total[key]) for currency, total in currencies.items()
                      for label, key in (("Net PnL", "net_pnl"), ("Realized PnL", "realized_pnl"),
                                         ("Unrealized PnL at mid", "unrealized_pnl"), ("Fees", "fees"),
                                         ("Sharpe (annualised)", "sharpe"), ("Max drawdown", "max_drawdown"),
                                         ("Turnover (notional)", "turnover"))]
    else:
        money_rows = [(f"Net PnL{money}", d["net_pnl"]), (f"Realized PnL{money}", d["realized_pnl"]),
                      (f"Unrealized PnL at mid{money}", d["unrealized_pnl"]), (f"Fees{money}", d["fees"]),
                      ("Sharpe (annualised)", d["sharpe"]), (f"Max drawdown{money}", d["max_drawdown"]),
                      (f"Turnover (notional{notional})", d["turnover"])]
    return money_rows + [
        (f"Final position{qty}", d["position"]), ("Trades (fills)", d["trades"]), ("Orders sent", d["orders_sent"]),
        ("Cancels", d["cancels"]), ("Rejects", d["rejects"]), ("Fill ratio", d["fill_ratio"]),
        (f"Traded quantity{qty}", d["traded_qty"]),
        ("Market time covered (s)", d["duration_s"]), ("Rows", d["rows"]), ("Rows/s", d["rows_per_s"]),
    ]


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _finite(value):
    """JSON has no NaN/inf: write null for them."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def sharpe_ratio(equity: np.ndarray, interval_s: float) -> float:
    """Annualised Sharpe of equity changes sampled every ``interval_s`` (NaN if flat or too short)."""
    if len(equity) < 3:
        return math.nan
    changes = np.diff(equity)
    std = float(changes.std(ddof=1))
    if not std > 0:
        return math.nan
    return float(changes.mean()) / std * math.sqrt(SECONDS_PER_YEAR / interval_s)


def max_drawdown(equity: np.ndarray) -> float:
    if len(equity) == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    return float((peaks - equity).max())


# ---------------------------------------------------------------------------------- HTML

def _svg_curve(ts_ns: np.ndarray, equity: np.ndarray, width: int = 860, height: int = 300) -> str:
    if len(equity) < 2:
        return "<p>Not enough equity samples to draw a curve.</p>"
    pad_l, pad_r, pad_t, pad_b = 70, 15, 15, 35
    x0, x1 = float(ts_ns[0]), float(ts_ns[-1])
    lo, hi = float(equity.min()), float(equity.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    span_x = max(x1 - x0, 1.0)

    def px(t: float) -> float:
        return pad_l + (t - x0) / span_x * (width - pad_l - pad_r)

    def py(v: float) -> float:
        return pad_t + (hi - v) / (hi - lo) * (height - pad_t - pad_b)

    step = max(1, len(equity) // 2000)  # a few thousand points draw instantly and look the same
    points = " ".join(f"{px(t):.1f},{py(v):.1f}" for t, v in zip(ts_ns[::step], equity[::step]))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="equity curve">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>']
    for k in range(5):
        value = lo + (hi - lo) * k / 4
        y = py(value)
        parts.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - pad_r}" y2="{y:.1f}" stroke="#eee"/>')
        label = f"{value:.3g}" if hi - lo < 0.05 else f"{value:,.2f}"  # a coin's equity: cents would all read 0.00
        parts.append(f'<text x="{pad_l - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{label}</text>')
    if lo < 0 < hi:
        parts.append(f'<line x1="{pad_l}" y1="{py(0):.1f}" x2="{width - pad_r}" y2="{py(0):.1f}" '
                     f'stroke="#999" stroke-dasharray="4 3"/>')
    for k in range(5):
        t = x0 + span_x * k / 4
        parts.append(f'<text x="{px(t):.1f}" y="{height - 12}" font-size="11" text-anchor="middle">'
                     f'+{(t - x0) / 1e9:.0f}s</text>')
    parts.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{points}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if 0.0 < abs(value) < 0.01:  # a coin's PnL and fees (a few 1e-5 ETH) would print as 0.0000
            return f"{value:.4g}"
        return f"{value:,.4f}" if abs(value) < 1000 else f"{value:,.2f}"
    return html.escape(str(value))


def _market_text(result: BacktestResult) -> str:
    names = {"spot": "spot", "linear": "linear USD-M", "inverse": "inverse COIN-M"}
    text = names.get(result.market, result.market)
    if result.units.get("contract_usd"):
        text += f", contracts of {result.units['contract_usd']:g} USD, PnL in {result.units['pnl']}"
    return text


def _unit_suffix(result: BacktestResult) -> str:
    return f" ({result.units['pnl']})" if result.units.get("pnl") else ""


def qty_unit_text(units: dict) -> str:
    """``contracts of 10 USD`` on an inverse market, else the base asset (``units``: ``Units.as_dict``)."""
    if units.get("contract_usd"):
        return f"{units['qty']} of {units['contract_usd']:g} USD"
    return units.get("qty", "")


def _equity_curves(result: BacktestResult) -> str:
    """One curve, or one per settlement currency (never their sum)."""
    every = f"(sampled every {result.equity_interval_ms:g} ms of market time)"
    if not result.equity_by_currency:
        return (f"<h2>Equity{html.escape(_unit_suffix(result))} {every}</h2>\n"
                + _svg_curve(result.equity_ts_ns, result.equity))
    return "\n".join(f"<h2>Equity ({html.escape(currency)}) {every}</h2>\n{_svg_curve(result.equity_ts_ns, curve)}"
                     for currency, curve in result.equity_by_currency.items())


def render_html(result: BacktestResult) -> str:
    d = result.to_dict(curve=False)
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in figures(d))
    params = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in result.params.items())
    latency = html.escape(json.dumps(d["latency_model"]))
    extra = ""
    if result.strategy_summary:
        extra = "<h2>Strategy</h2><table>" + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in d["strategy_summary"].items()
        ) + "</table>"
    symbols = ""
    if len(result.symbols) > 1:  # several symbols: the figures of each (a position only in its own units)
        keys = ("orders_sent", "trades", "position", "realized_pnl", "unrealized_pnl", "fees", "net_pnl", "cancels",
                "rejects", "turnover")
        head = "".join(f"<th>{html.escape(k)}</th>" for k in ("symbol", "market", "strategies", "qty in", "PnL in")
                       + keys)
        body = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(row['market'])}</td>"
            f"<td>{html.escape(', '.join(row['strategies']))}</td><td>{html.escape(qty_unit_text(row['units']))}</td>"
            f"<td>{html.escape(row['currency'])}</td>" + "".join(f"<td>{_fmt(row[k])}</td>" for k in keys)
            + "</tr>" for name, row in result.symbols.items())
        symbols = f"<h2>Per symbol</h2><table><tr>{head}</tr>{body}</table>"
    rejects = ""
    if result.reject_reasons:
        rejects = "<h2>Rejects by reason</h2><table>" + "".join(
            f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in result.reject_reasons.items()) + "</table>"
    defs = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in DEFINITIONS.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest: {html.escape(result.strategy)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 900px; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ padding: 3px 12px; border-bottom: 1px solid #eee; text-align: left; }}
td {{ text-align: right; font-variant-numeric: tabular-nums; }}
code {{ background: #f4f4f4; padding: 1px 4px; }}
</style></head><body>
<h1>Backtest: {html.escape(result.strategy)}</h1>
<p>Data <code>{html.escape(result.data)}</code>, symbol {html.escape(result.symbol or "-")}
({html.escape(_market_text(result))}), seed {result.seed}, engine {html.escape(result.engine)},
fill model {html.escape(result.fill_model)}, latency model <code>{latency}</code>.</p>
{_equity_curves(result)}
<h2>Results</h2><table>{rows}</table>
{symbols}<h2>Parameters</h2><table>{params}</table>
{extra}{rejects}
<h2>Definitions</h2><ul>{defs}</ul>
</body></html>
"""
