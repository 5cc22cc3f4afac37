"""Which unit a symbol's quantities, PnL and notional are in: the labels the backtest report, the run
summary, the dashboard, the API and the metrics show next to the numbers.

Spot and linear (USD-M): quantity in the base asset (BTC of BTCUSDT), PnL, fees and notional in the
quote (USDT). Inverse (COIN-M): quantity in contracts of ``contract_size`` USD, PnL, fees and notional
in the coin (ETH of ETHUSD_PERP). The account-wide figures (total PnL, the daily loss limit) add
symbols of different units, so they are in the quote currency, an inverse symbol's coin PnL
converted at its mid (``risk.state_nb.refresh_totals_and_loss``).
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
