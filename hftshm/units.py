"""Which unit a symbol's quantities, PnL and notional are in: the labels the backtest report, the run
summary, the dashboard, the API and the metrics show next to the numbers.

Spot and linear (USD-M): quantity in the base asset (BTC of BTCUSDT), PnL, fees and notional in the
quote (USDT). Inverse (COIN-M): quantity in contracts of ``contract_size`` USD, PnL, fees and notional
in the coin (ETH of ETHUSD_PERP). Totals are per settlement currency (``totals_by_currency``): a run or
backtest of a USDT symbol and an ETH-settled one reports a USDT total and an ETH total, never their
sum. Only risk's account-wide daily loss limit needs one number: it converts an inverse symbol's coin
PnL at its mid (``risk.state_nb.refresh_totals_and_loss``) and says so (``ACCOUNT_UNIT``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hftshm.symbols import Symbol

# longest first, so BTCUSDT splits as BTC + USDT, not BTCUSD + T
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "TRY", "BTC", "ETH", "BNB")
ACCOUNT_UNIT = "USD"  # account-wide totals: USDT and USD quotes taken at par


@dataclass(frozen=True)
class Units:
    qty: str  # "BTC", or "contracts" on an inverse market
    pnl: str  # PnL and fees: "USDT", or the coin on an inverse market
    notional: str  # the same unit as the PnL
    contract_usd: float | None = None  # USD per contract on an inverse market

    @property
    def qty_label(self) -> str:
        """``contracts (10 USD)`` on an inverse market, else the base asset."""
        if self.contract_usd is None:
            return self.qty
        return f"{self.qty} ({self.contract_usd:g} USD)"

    def as_dict(self) -> dict:
        return asdict(self)


def base_and_quote(name: str) -> tuple[str, str]:
    """("ETH", "USD") for ETHUSD_PERP, ("BTC", "USDT") for BTCUSDT; (name, "") when no quote matches."""
    pair = name.upper().split("_", 1)[0]
    for quote in _QUOTES:
        if pair.endswith(quote) and len(pair) > len(quote):
            return pair[: -len(quote)], quote
    return pair, ""


def units_of(symbol: Symbol) -> Units:
    base, quote = base_and_quote(symbol.name)
    if symbol.market == "inverse":
        return Units(qty="contracts", pnl=base, notional=base, contract_usd=float(symbol.contract_size))
    quote = quote or "quote"
    return Units(qty=base, pnl=quote, notional=quote)


def units_by_id(symbols) -> dict[int, dict]:
    """symbol id -> {"market", "qty_unit", "pnl_unit"}: what a snapshot's position rows carry."""
    out = {}
    for symbol in symbols:
        units = units_of(symbol)
        out[symbol.symbol_id] = {"market": symbol.market, "qty_unit": units.qty_label, "pnl_unit": units.pnl}
    return out


def currency_of(symbol: Symbol) -> str:
    """The currency a symbol's PnL, fees and notional settle in: the quote (USDT of BTCUSDT) on spot and
    linear markets, the coin (ETH of ETHUSD_PERP) on an inverse market."""
    return units_of(symbol).pnl


def totals_by_currency(rows: dict[str, dict], currency: dict[str, str], keys) -> dict[str, dict]:
    """Per settlement currency: ``keys`` summed over the symbols settling in it (``rows``: symbol ->
    figures, ``currency``: symbol -> its currency) and the list of those symbols. Figures of different
    currencies are never added: a USDT PnL plus an ETH PnL is no number at all."""
    out: dict[str, dict] = {}
    for name, row in rows.items():
        total = out.setdefault(currency[name], {"symbols": [], **{key: 0.0 for key in keys}})
        total["symbols"].append(name)
        for key in keys:
            value = row.get(key)
            if value is not None:
                total[key] += value
    return dict(sorted(out.items()))
