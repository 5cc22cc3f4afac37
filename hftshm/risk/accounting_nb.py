"""Positions, PnL and open-order exposure from execution reports; marks from book snapshots.

Average-cost accounting per symbol, account-wide (all strategies): a fill that adds to the position
moves the average cost; one that reduces it realizes (price - avg_cost) on the closed quantity; one
that flips it closes the old position and opens the rest at the fill price. Fees are separate.
Inverse (COIN-M) symbols count contracts: the average cost is harmonic and a close realizes
``contracts * contract_size * (1/avg_cost - 1/price)`` in the coin (``hftshm.instruments_nb``), as
the strategies' portfolios do.

Exposure rules (the open-order table, ``orders_nb``): an ACK records the platform order id; fills
reduce the reserved quantity and a FILL (or leaves 0) ends the order; CANCEL ends it; REJECT ends an
order that was never acknowledged, but for an acknowledged one it means a cancel/replace request
was refused, so the order stays with its confirmed quantity. A replace changes the order in place
(it keeps its order id and client id, as the OMS and exchange do it): REPLACE sets its open quantity.
A refused cancel/replace is reported under the request's own client id, which risk does not track,
so the increase of a refused replace stays reserved until the order ends (conservative).
Malformed reports are counted (``account.reports_bad``) and skipped, never raised on.
"""

from __future__ import annotations

import math

from numba import njit

from hftshm import instruments_nb
from hftshm.codes import ReportEvent, Side
from hftshm.risk import orders_nb
from hftshm.risk.state_nb import refresh_symbol_pnl, refresh_totals_and_loss


@njit(cache=True)
def apply_fill(sym, side, qty, price, fee):
    signed = qty if side == Side.BUY else -qty
    pos = sym.position
    inverse = sym.market == instruments_nb.INVERSE
    if pos == 0.0 or (pos > 0.0) == (signed > 0.0):
        new_pos = pos + signed
        if inverse:
            sym.avg_cost = price if pos == 0.0 else instruments_nb.average_entry(instruments_nb.INVERSE, abs(pos),
                                                                                sym.avg_cost, qty, price)
        else:
            sym.avg_cost = (abs(pos) * sym.avg_cost + qty * price) / abs(new_pos)
    else:
        closed = min(qty, abs(pos))
        direction = 1.0 if pos > 0.0 else -1.0
        if inverse:
            sym.realized += instruments_nb.position_pnl(instruments_nb.INVERSE, closed * direction, sym.avg_cost,
                                                        price, sym.contract_size)
        else:
            sym.realized += closed * (price - sym.avg_cost) * direction
        new_pos = pos + signed
        if abs(new_pos) <= sym.qty_eps:
            new_pos = 0.0
            sym.avg_cost = 0.0
        elif (new_pos > 0.0) != (pos > 0.0):
            sym.avg_cost = price  # flipped: the remainder opened at this fill's price
    sym.position = new_pos
    sym.last_price = price
    sym.fees += fee
    sym.fills += 1
    sym.volume += qty


@njit(cache=True, inline="always")
def _release(sym, side, qty):
    """Take ``qty`` off a side's exposure; float residue below a lot-millionth snaps to zero."""
    if side == Side.BUY:
        sym.pending_buy -= qty
        if sym.pending_buy < sym.qty_eps:
            sym.pending_buy = 0.0
    else:
        sym.pending_sell -= qty
        if sym.pending_sell < sym.qty_eps:
            sym.pending_sell = 0.0


@njit(cache=True, inline="always")
def _end_order(symbols, account, table, slot):
    entry = table[slot]
    _release(symbols[entry.symbol_id], entry.side, entry.leaves)
    orders_nb.remove(table, slot)
    account[0].open_orders -= 1


@njit(cache=True, nogil=True)
def apply_reports(reports, start, mask, n, symbols, account, table, control_words):
    """Apply the ``n`` reports ``reports[(start + i) & mask]`` (``0, -1`` for a plain array); returns
    how many were fills. Never raises on bad input."""
    acct = account[0]
    fills = 0
    for k in range(n):
        r = reports[(start + k) & mask]
        acct.reports += 1
        event = r.event
        slot = orders_nb.find(table, r.strategy_id, r.client_order_id)
        if slot < 0:
            acct.reports_unknown_order += 1
        if event == ReportEvent.PARTIAL or event == ReportEvent.FILL:
            sid = r.symbol_id
            qty = r.qty
            price = r.price
            fee = r.fee
            if (sid >= len(symbols) or symbols[sid].known == 0 or not (qty > 0.0) or math.isinf(qty)
                    or not (price > 0.0) or math.isinf(price) or not math.isfinite(fee)
                    or (r.side != Side.BUY and r.side != Side.SELL)):
                acct.reports_bad += 1
                continue
            sym = symbols[sid]
            apply_fill(sym, r.side, qty, price, fee)
            refresh_symbol_pnl(sym)
            fills += 1
            if slot >= 0:
                entry = table[slot]
                used = min(qty, entry.leaves)
                entry.leaves -= used
                _release(symbols[entry.symbol_id], entry.side, used)
                entry.confirmed_leaves = r.leaves_qty
                if event == ReportEvent.FILL or not (r.leaves_qty > sym.qty_eps) or entry.leaves <= sym.qty_eps:
                    _end_order(symbols, account, table, slot)
        elif slot < 0:
            continue
        elif event == ReportEvent.ACK:
            entry = table[slot]
            entry.acked = 1
            entry.order_id = r.order_id
            entry.confirmed_leaves = r.leaves_qty
        elif event == ReportEvent.CANCEL:
            _end_order(symbols, account, table, slot)
        elif event == ReportEvent.REJECT:
            entry = table[slot]
            if entry.acked == 0:
                _end_order(symbols, account, table, slot)
            else:
                # a refused cancel/replace: the order lives on at its confirmed size
                sym = symbols[entry.symbol_id]
                confirmed = entry.confirmed_leaves if entry.confirmed_leaves > 0.0 else 0.0
                if entry.leaves > confirmed:
                    _release(sym, entry.side, entry.leaves - confirmed)
                    entry.leaves = confirmed
                entry.cancel_sent = 0
        elif event == ReportEvent.REPLACE:
            entry = table[slot]
            sym = symbols[entry.symbol_id]
            new_leaves = r.leaves_qty
            if not (new_leaves >= 0.0) or math.isinf(new_leaves):
                acct.reports_bad += 1
                continue
            if new_leaves > entry.leaves:
                if entry.side == Side.BUY:
                    sym.pending_buy += new_leaves - entry.leaves
                else:
                    sym.pending_sell += new_leaves - entry.leaves
            else:
                _release(sym, entry.side, entry.leaves - new_leaves)
            entry.leaves = new_leaves
            entry.confirmed_leaves = new_leaves
            entry.acked = 1
            if r.order_id != 0:
                entry.order_id = r.order_id
            if new_leaves <= sym.qty_eps:
                _end_order(symbols, account, table, slot)
    if fills > 0:
        refresh_totals_and_loss(symbols, account, control_words)
    return fills


@njit(cache=True, nogil=True)
def apply_marks(snapshots, start, mask, n, symbols, account, control_words):
    """Mark positions to the mid of each valid snapshot ``snapshots[(start + i) & mask]``; returns how
    many marks were applied."""
    applied = 0
    for k in range(n):
        s = snapshots[(start + k) & mask]
        sid = s.symbol_id
        mid = s.mid
        if sid >= len(symbols) or symbols[sid].known == 0 or s.valid == 0 or not (mid > 0.0) or math.isinf(mid):
            continue
        sym = symbols[sid]
        sym.mid = mid
        refresh_symbol_pnl(sym)
        applied += 1
        if s.exch_ts_ns > account[0].last_market_ns:
            account[0].last_market_ns = s.exch_ts_ns
    account[0].marks += applied
    if applied > 0:
        refresh_totals_and_loss(symbols, account, control_words)
    return applied
