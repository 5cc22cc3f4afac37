"""Every record layout, pinned: a change to any field's name, type, offset or size (or a new layout)
fails here until this table is updated, so changing a record's bytes is a decision, not an accident.
Also: the fingerprint moves with any field change, and malformed declarations give clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hftshm.transport.layout import LayoutError, all_layouts, load, names, parse_layout

# name: (version, itemsize, [(field, type[shape], offset, size), ...])
PINNED = {
    "book_snapshot": (1, 448, [
        ("seq", "i8", 0, 8),
        ("exch_ts_ns", "i8", 8, 8),
        ("local_ts_ns", "i8", 16, 8),
        ("publish_ts_ns", "i8", 24, 8),
        ("update_id", "i8", 32, 8),
        ("mid", "f8", 40, 8),
        ("spread", "f8", 48, 8),
        ("microprice", "f8", 56, 8),
        ("imbalance", "f8", 64, 8),
        ("book_seq", "i8", 72, 8),
        ("symbol_id", "u2", 80, 2),
        ("valid", "u1", 82, 1),
        ("levels", "u1", 83, 1),
        ("flags", "u4", 84, 4),
        ("bid_px", "f8[10]", 128, 80),
        ("bid_qty", "f8[10]", 208, 80),
        ("ask_px", "f8[10]", 288, 80),
        ("ask_qty", "f8[10]", 368, 80),
    ]),
    "control_message": (1, 64, [
        ("seq", "i8", 0, 8),
        ("ts_ns", "i8", 8, 8),
        ("target_id", "i8", 16, 8),
        ("value_i", "i8", 24, 8),
        ("value_f", "f8", 32, 8),
        ("kind", "u2", 40, 2),
        ("flags", "u2", 42, 2),
    ]),
    "execution_report": (1, 128, [
        ("seq", "i8", 0, 8),
        ("exch_ts_ns", "i8", 8, 8),
        ("local_ts_ns", "i8", 16, 8),
        ("origin_ts_ns", "i8", 24, 8),
        ("order_id", "i8", 32, 8),
        ("client_order_id", "i8", 40, 8),
        ("contra_order_id", "i8", 48, 8),
        ("price", "f8", 56, 8),
        ("qty", "f8", 64, 8),
        ("leaves_qty", "f8", 72, 8),
        ("cum_qty", "f8", 80, 8),
        ("fee", "f8", 88, 8),
        ("strategy_id", "u2", 96, 2),
        ("symbol_id", "u2", 98, 2),
        ("event", "u1", 100, 1),
        ("side", "u1", 101, 1),
        ("reason", "u2", 102, 2),
        ("flags", "u4", 104, 4),
    ]),
    "market_event": (1, 64, [
        ("seq", "i8", 0, 8),
        ("exch_ts_ns", "i8", 8, 8),
        ("local_ts_ns", "i8", 16, 8),
        ("publish_ts_ns", "i8", 24, 8),
        ("price", "f8", 32, 8),
        ("qty", "f8", 40, 8),
        ("update_id", "i8", 48, 8),
        ("symbol_id", "u2", 56, 2),
        ("kind", "u1", 58, 1),
        ("side", "u1", 59, 1),
        ("flags", "u4", 60, 4),
    ]),
    "order": (1, 128, [
        ("seq", "i8", 0, 8),
        ("ts_ns", "i8", 8, 8),
        ("origin_ts_ns", "i8", 16, 8),
        ("market_ts_ns", "i8", 24, 8),
        ("order_id", "i8", 32, 8),
        ("client_order_id", "i8", 40, 8),
        ("target_order_id", "i8", 48, 8),
        ("price", "f8", 56, 8),
        ("qty", "f8", 64, 8),
        ("strategy_id", "u2", 72, 2),
        ("symbol_id", "u2", 74, 2),
        ("action", "u1", 76, 1),
        ("side", "u1", 77, 1),
        ("order_type", "u1", 78, 1),
        ("tif", "u1", 79, 1),
        ("attempt", "u2", 80, 2),
        ("owner", "u2", 82, 2),
        ("flags", "u4", 84, 4),
        ("target_client_order_id", "i8", 88, 8),
    ]),
    "live_frame": (1, 512, [
        ("seq", "i8", 0, 8),
        ("recv_ns", "i8", 8, 8),
        ("frame_len", "i4", 16, 4),
        ("chunk_len", "i4", 20, 4),
        ("kind", "i4", 24, 4),
        ("market", "i4", 28, 4),
        ("chunk", "i4", 32, 4),
        ("n_chunks", "i4", 36, 4),
        ("payload", "u1[472]", 40, 472),
    ]),
    "order_event": (1, 144, [
        ("event_id", "i8", 0, 8),
        ("order_id", "i8", 8, 8),
        ("client_order_id", "i8", 16, 8),
        ("exch_ts_ns", "i8", 24, 8),
        ("local_ts_ns", "i8", 32, 8),
        ("created_ts_ns", "i8", 40, 8),
        ("price", "f8", 48, 8),
        ("qty", "f8", 56, 8),
        ("exec_price", "f8", 64, 8),
        ("exec_qty", "f8", 72, 8),
        ("cum_qty", "f8", 80, 8),
        ("leaves_qty", "f8", 88, 8),
        ("fee", "f8", 96, 8),
        ("request_client_order_id", "i8", 104, 8),
        ("strategy_id", "u2", 112, 2),
        ("symbol_id", "u2", 114, 2),
        ("kind", "u1", 116, 1),
        ("state", "u1", 117, 1),
        ("prev_state", "u1", 118, 1),
        ("side", "u1", 119, 1),
        ("order_type", "u1", 120, 1),
        ("tif", "u1", 121, 1),
        ("reason", "u2", 122, 2),
        ("attempt", "u2", 124, 2),
        ("flags", "u2", 126, 2),
        ("pending_price", "f8", 128, 8),
        ("pending_qty", "f8", 136, 8),
    ]),
    "order_intent": (1, 128, [
        ("seq", "i8", 0, 8),
        ("ts_ns", "i8", 8, 8),
        ("origin_ts_ns", "i8", 16, 8),
        ("market_ts_ns", "i8", 24, 8),
        ("client_order_id", "i8", 32, 8),
        ("target_client_order_id", "i8", 40, 8),
        ("price", "f8", 48, 8),
        ("qty", "f8", 56, 8),
        ("strategy_id", "u2", 64, 2),
        ("symbol_id", "u2", 66, 2),
        ("action", "u1", 68, 1),
        ("side", "u1", 69, 1),
        ("order_type", "u1", 70, 1),
        ("tif", "u1", 71, 1),
        ("flags", "u4", 72, 4),
    ]),
    "risk_control": (1, 768, [
        ("epoch", "i8", 0, 8),
        ("kill_switch", "i8", 8, 8),
        ("trading_state", "i8", 16, 8),
        ("halt_reason", "i8", 24, 8),
        ("changed_unix_ns", "i8", 32, 8),
        ("changed_by_pid", "i8", 40, 8),
        ("worker_pid", "i8", 48, 8),
        ("redis_status", "i8", 56, 8),
        ("checks", "i8", 64, 8),
        ("approved", "i8", 72, 8),
        ("rejected", "i8", 80, 8),
        ("kill_cancels", "i8", 88, 8),
        ("open_orders", "i8", 96, 8),
        ("daily_pnl", "f8", 104, 8),
        ("realized_pnl", "f8", 112, 8),
        ("unrealized_pnl", "f8", 120, 8),
        ("fees", "f8", 128, 8),
        ("summary_unix_ns", "i8", 136, 8),
        ("reject_counts", "i8[64]", 256, 512),
    ]),
    "strategy_status": (1, 192, [
        ("strategy_id", "i8", 0, 8),
        ("state", "i8", 8, 8),
        ("market_ts_ns", "i8", 16, 8),
        ("signals", "i8", 24, 8),
        ("intents", "i8", 32, 8),
        ("fills", "i8", 40, 8),
        ("rejects", "i8", 48, 8),
        ("cancels", "i8", 56, 8),
        ("errors", "i8", 64, 8),
        ("open_orders", "i8", 72, 8),
        ("position", "f8", 80, 8),
        ("avg_price", "f8", 88, 8),
        ("realized_pnl", "f8", 96, 8),
        ("unrealized_pnl", "f8", 104, 8),
        ("fees", "f8", 112, 8),
        ("mid", "f8", 120, 8),
        ("traded_qty", "f8", 128, 8),
        ("traded_notional", "f8", 136, 8),
        ("symbol_id", "u2", 144, 2),
        ("name", "u1[40]", 152, 40),
    ]),
    "worker_status": (1, 384, [
        ("pid", "i8", 0, 8),
        ("heartbeat_ns", "i8", 8, 8),
        ("started_ns", "i8", 16, 8),
        ("restarts", "i8", 24, 8),
        ("state", "i8", 32, 8),
        ("work_count", "i8", 40, 8),
        ("idle_count", "i8", 48, 8),
        ("cpu", "i8", 56, 8),
        ("command", "i8", 64, 8),
        ("exit_code", "i8", 72, 8),
        ("counters", "i8[32]", 128, 256),
    ]),
}


def _table(layout) -> list[tuple[str, str, int, int]]:
    return [(f.name, f.type + (str(list(f.shape)) if f.shape else ""), f.offset, f.size) for f in layout.fields]


def _paste_hint(layout) -> str:
    rows = "\n".join(f"        {row!r}," for row in _table(layout)).replace("'", '"')
    return f'    "{layout.name}": ({layout.version}, {layout.itemsize}, [\n{rows}\n    ]),'


def test_every_declared_layout_is_pinned():
    for layout in all_layouts():
        assert layout.name in PINNED, (
            f"layout {layout.name!r} is not pinned in {__name__}.PINNED; review it and add:\n{_paste_hint(layout)}")


@pytest.mark.parametrize("name", sorted(PINNED))
def test_layout_fields_are_pinned(name):
    assert name in names(), f"pinned layout {name!r} no longer exists in layouts/"
    layout = load(name)
    version, itemsize, fields = PINNED[name]
    assert (layout.version, layout.itemsize) == (version, itemsize), _paste_hint(layout)
    assert _table(layout) == fields, f"layout {name!r} changed; if intended, update PINNED:\n{_paste_hint(layout)}"


@pytest.mark.parametrize("name", sorted(PINNED))
def test_dtype_matches_the_declaration(name):
    layout = load(name)
    dtype = layout.dtype
    assert dtype.itemsize == layout.itemsize
    for field in layout.fields:
        field_dtype, offset = dtype.fields[field.name][:2]
        assert offset == field.offset
        assert field_dtype.itemsize == field.size
        assert field_dtype.base == np.dtype(field.type)


_BASE = """
name = "probe"
version = 1
itemsize = 16
[[fields]]
name = "a"
type = "i8"
offset = 0
[[fields]]
name = "b"
type = "f8"
offset = 8
"""


def test_fingerprint_changes_when_any_field_changes():
    base = parse_layout(_BASE)
    variants = [
        _BASE.replace('name = "b"', 'name = "c"'),
        _BASE.replace('type = "f8"', 'type = "i8"'),
        _BASE.replace("version = 1", "version = 2"),
        _BASE.replace("itemsize = 16", "itemsize = 24"),
        _BASE.replace('offset = 8', 'offset = 16').replace("itemsize = 16", "itemsize = 24"),
    ]
    prints = {parse_layout(text).fingerprint for text in variants}
    assert base.fingerprint not in prints and len(prints) == len(variants)
    assert parse_layout(_BASE).fingerprint == base.fingerprint, "stable for the same declaration"
    assert 0 <= base.fingerprint < 2**63, "fits an int64 header word"


def test_fingerprint_follows_every_real_layout_field():
    layout = load("market_event")
    changed = dataclasses.replace(layout, fields=layout.fields[:-1] + (
        dataclasses.replace(layout.fields[-1], type="i4"),))
    assert changed.fingerprint != layout.fingerprint


@pytest.mark.parametrize("text, message", [
    (_BASE.replace('offset = 8', 'offset = 4').replace('type = "f8"', 'type = "i4"'), "'b' at offset 4 overlaps"),
    (_BASE.replace('type = "f8"', 'type = "f16"'), "field 'b' has type 'f16'; allowed: i1, i2"),
    (_BASE.replace('type = "f8"', 'type = "V8"'), "field 'b' has type 'V8'"),
    (_BASE.replace("itemsize = 16", "itemsize = 8"), "fields end at byte 16, past itemsize 8"),
    (_BASE.replace('offset = 8', 'offset = 12').replace("itemsize = 16", "itemsize = 24"), "not 8-byte aligned"),
    (_BASE.replace("itemsize = 16", "itemsize = 20"), "itemsize 20 is not a multiple of 8"),
    (_BASE.replace('version = 1', ''), "missing key 'version'"),
    ("name = [", "not valid TOML"),
])
def test_malformed_declarations_are_clear_errors(text, message):
    with pytest.raises(LayoutError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_layout(text, "layouts/probe.toml")


def test_unknown_layout_name_lists_declared_ones():
    with pytest.raises(LayoutError, match="no layout named 'nope'; declared: .*market_event"):
        load("nope")
