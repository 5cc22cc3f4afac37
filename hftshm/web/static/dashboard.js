// hftshm live dashboard: polls /dashboard/data and redraws numbers, tables and SVG charts.
// Plain JS, no libraries, no network beyond this server (works offline).
"use strict";

const body = document.body;
const REFRESH_MS = Math.max(200, parseInt(body.dataset.refreshMs || "1000", 10));
const TOKEN_REQUIRED = body.dataset.tokenRequired === "true";
const SVG_NS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem("hftshm.token") || "";
let lastData = null;
let failures = 0;

// ---------------------------------------------------------------- formatting

function fmtInt(n) {
  if (n === null || n === undefined || !isFinite(n)) return "—";
  return Math.round(n).toLocaleString("en-US");
}
function fmtRate(n) {
  if (n === null || n === undefined || !isFinite(n)) return "—";
  if (n >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  if (n >= 100) return n.toFixed(0);
  return n.toFixed(1);
}
function fmtNs(ns) {
  if (ns === null || ns === undefined || !isFinite(ns)) return "—";
  if (ns < 1e3) return ns.toFixed(0) + " ns";
  if (ns < 1e6) return (ns / 1e3).toFixed(ns < 1e4 ? 2 : 1) + " µs";
  if (ns < 1e9) return (ns / 1e6).toFixed(ns < 1e7 ? 2 : 1) + " ms";
  return (ns / 1e9).toFixed(2) + " s";
}
function fmtMoney(x, sign = true) {
  if (x === null || x === undefined || !isFinite(x)) return "—";
  const s = Math.abs(x).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return (x < 0 ? "−" : sign && x > 0 ? "+" : "") + s;
}
function fmtCurrency(x, currency) {
  // stablecoins and USD in cents; a coin's PnL is a few 1e-5
  if (/^(USD|USDT|USDC|BUSD|FDUSD|TUSD|EUR)$/.test(currency)) return fmtMoney(x);
  if (x === null || x === undefined || !isFinite(x)) return "—";
  return (x > 0 ? "+" : "") + Number(x).toPrecision(6);
}
function fmtNum(x, digits = 3) {
  if (x === null || x === undefined || !isFinite(x)) return "—";
  return Number(x).toLocaleString("en-US", { minimumFractionDigits: 0, maximumFractionDigits: digits });
}
function fmtQty(x) {
  if (x === null || x === undefined || !isFinite(x)) return "—";
  return Number(x).toLocaleString("en-US", { minimumFractionDigits: 3, maximumFractionDigits: 6 });
}
// a position's PnL in its own unit: an inverse (COIN-M) position's PnL is in the coin, a few 1e-5
function fmtPnl(x, p) {
  if (p.market !== "inverse") return fmtMoney(x);
  if (x === null || x === undefined || !isFinite(x)) return "—";
  return (x < 0 ? "−" : x > 0 ? "+" : "") + Math.abs(x).toFixed(8);
}
function unitTag(u) {
  return u ? ` <span class="dim">${esc(u)}</span>` : "";
}
function fmtPrice(x) {
  if (x === null || x === undefined || !isFinite(x)) return "—";
  return Number(x).toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 2 });
}
function fmtTime(unixNs) {
  if (!unixNs) return "—";
  const d = new Date(unixNs / 1e6);
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
// bar widths go through the CSSOM: the Content-Security-Policy (style-src 'self') blocks style="" in markup
function applyWidths(root) {
  root.querySelectorAll("[data-w]").forEach((el) => { el.style.width = el.dataset.w + "%"; });
}
// time-axis labels: as fine as the tick spacing needs (HH:MM, HH:MM:SS, or with tenths/ms), so
// labels on a short window read as distinct times rather than the same second five times
function fmtAxisTime(tSec, stepSec) {
  const d = new Date(tSec * 1000);
  const hms = d.toTimeString().slice(0, 8);
  if (stepSec >= 60) return hms.slice(0, 5);
  if (stepSec >= 1) return hms;
  const digits = stepSec >= 0.1 ? 1 : stepSec >= 0.01 ? 2 : 3;
  return hms + "." + String(d.getMilliseconds()).padStart(3, "0").slice(0, digits);
}
function signClass(x) { return x > 0 ? "pos" : x < 0 ? "neg" : ""; }
function esc(s) {
  return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function setText(id, text, cls) {
  const el = $(id);
  if (!el) return;
  el.textContent = text;
  if (cls !== undefined) el.className = el.className.split(" ").filter((c) => c !== "pos" && c !== "neg").concat(cls ? [cls] : []).join(" ");
}

// ---------------------------------------------------------------- SVG

function svgEl(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const k in attrs) el.setAttribute(k, attrs[k]);
  return el;
}

function sparkline(svg, values, color) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 200, H = 36;
  const vals = values.filter((v) => v !== null && isFinite(v));
  if (vals.length < 2) {
    svg.appendChild(svgEl("line", { x1: 0, y1: H - 1, x2: W, y2: H - 1, stroke: "#1f2733" }));
    return;
  }
  const max = Math.max(...vals) || 1;
  const step = W / (values.length - 1);
  let d = "";
  values.forEach((v, i) => {
    const y = H - 2 - ((v || 0) / max) * (H - 6);
    d += (i ? "L" : "M") + (i * step).toFixed(1) + "," + y.toFixed(1);
  });
  const gid = "g" + svg.id;
  const defs = svgEl("defs", {});
  const grad = svgEl("linearGradient", { id: gid, x1: 0, y1: 0, x2: 0, y2: 1 });
  grad.appendChild(svgEl("stop", { offset: "0%", "stop-color": color, "stop-opacity": 0.35 }));
  grad.appendChild(svgEl("stop", { offset: "100%", "stop-color": color, "stop-opacity": 0 }));
  defs.appendChild(grad);
  svg.appendChild(defs);
  svg.appendChild(svgEl("path", { d: d + `L${W},${H}L0,${H}Z`, fill: `url(#${gid})`, stroke: "none" }));
  svg.appendChild(svgEl("path", { d, fill: "none", stroke: color, "stroke-width": 1.5, "vector-effect": "non-scaling-stroke" }));
}

function pnlChart(svg, history) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = Math.max(300, Math.round(svg.clientWidth || 800));
  const H = Math.max(160, Math.round(svg.clientHeight || 240));
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const pts = history.filter((p) => p.pnl !== null && isFinite(p.pnl));
  const padL = 64, padR = 12, padT = 12, padB = 22;
  const plotW = W - padL - padR, plotH = H - padT - padB;
  if (pts.length < 2) {
    const t = svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis-label" });
    t.textContent = "waiting for PnL samples…";
    svg.appendChild(t);
    return;
  }
  const t0 = pts[0].t, t1 = pts[pts.length - 1].t;
  let lo = Math.min(0, ...pts.map((p) => p.pnl)), hi = Math.max(0, ...pts.map((p) => p.pnl));
  if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
  const pad = (hi - lo) * 0.08; hi += pad; lo -= pad;
  const x = (t) => padL + ((t - t0) / Math.max(1e-9, t1 - t0)) * plotW;
  const y = (v) => padT + (1 - (v - lo) / (hi - lo)) * plotH;

  // grid and labels
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4, yy = y(v);
    svg.appendChild(svgEl("line", { x1: padL, x2: W - padR, y1: yy, y2: yy, class: "axis" }));
    const lbl = svgEl("text", { x: padL - 6, y: yy + 3, "text-anchor": "end", class: "axis-label" });
    // a coin's PnL spans a few 1e-5: cents would print every line as 0.00
    lbl.textContent = hi - lo < 0.05 ? Number(v).toPrecision(3) : fmtMoney(v, false);
    svg.appendChild(lbl);
  }
  const ticks = Math.max(1, Math.min(4, Math.floor(plotW / 90)));
  const step = (t1 - t0) / ticks;
  let previous = "";
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + step * i;
    const text = fmtAxisTime(t, step);
    if (text === previous) continue;  // never print the same time twice
    previous = text;
    const lbl = svgEl("text", { x: x(t), y: H - 6, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle", class: "axis-label" });
    lbl.textContent = text;
    svg.appendChild(lbl);
  }
  const zeroY = y(0);
  svg.appendChild(svgEl("line", { x1: padL, x2: W - padR, y1: zeroY, y2: zeroY, class: "zero" }));

  // area split at zero: green above, red below, via two clip rectangles
  const defs = svgEl("defs", {});
  const up = svgEl("clipPath", { id: "clip-up" });
  up.appendChild(svgEl("rect", { x: 0, y: 0, width: W, height: zeroY }));
  const dn = svgEl("clipPath", { id: "clip-dn" });
  dn.appendChild(svgEl("rect", { x: 0, y: zeroY, width: W, height: H }));
  const gUp = svgEl("linearGradient", { id: "pnl-up", x1: 0, y1: 0, x2: 0, y2: 1 });
  gUp.appendChild(svgEl("stop", { offset: "0%", "stop-color": "#00d18f", "stop-opacity": 0.35 }));
  gUp.appendChild(svgEl("stop", { offset: "100%", "stop-color": "#00d18f", "stop-opacity": 0.02 }));
  const gDn = svgEl("linearGradient", { id: "pnl-dn", x1: 0, y1: 1, x2: 0, y2: 0 });
  gDn.appendChild(svgEl("stop", { offset: "0%", "stop-color": "#ff4d5e", "stop-opacity": 0.35 }));
  gDn.appendChild(svgEl("stop", { offset: "100%", "stop-color": "#ff4d5e", "stop-opacity": 0.02 }));
  [up, dn, gUp, gDn].forEach((e) => defs.appendChild(e));
  svg.appendChild(defs);

  let line = "";
  pts.forEach((p, i) => { line += (i ? "L" : "M") + x(p.t).toFixed(1) + "," + y(p.pnl).toFixed(1); });
  const area = line + `L${x(t1).toFixed(1)},${zeroY.toFixed(1)}L${x(t0).toFixed(1)},${zeroY.toFixed(1)}Z`;
  svg.appendChild(svgEl("path", { d: area, fill: "url(#pnl-up)", "clip-path": "url(#clip-up)" }));
  svg.appendChild(svgEl("path", { d: area, fill: "url(#pnl-dn)", "clip-path": "url(#clip-dn)" }));
  svg.appendChild(svgEl("path", { d: line, fill: "none", stroke: "#00d18f", "stroke-width": 1.6, "clip-path": "url(#clip-up)" }));
  svg.appendChild(svgEl("path", { d: line, fill: "none", stroke: "#ff4d5e", "stroke-width": 1.6, "clip-path": "url(#clip-dn)" }));
  const last = pts[pts.length - 1];
  svg.appendChild(svgEl("circle", { cx: x(last.t), cy: y(last.pnl), r: 3.5, fill: last.pnl >= 0 ? "#00d18f" : "#ff4d5e" }));
  svg.setAttribute("data-points", String(pts.length));
}

// ---------------------------------------------------------------- rendering

function rows(tbody, html, cols, emptyText) {
  tbody.innerHTML = html.length ? html.join("") : `<tr class="empty"><td colspan="${cols}">${emptyText}</td></tr>`;
}

function render(d) {
  const live = d.running;
  const pill = $("status-pill");
  pill.textContent = live ? "LIVE" : "NO PLATFORM";
  pill.className = "pill " + (live ? "live" : "idle");
  setText("run-id", d.run_id ? d.run_id.replace(/_$/, "") : "");
  const offset = d.feed ? d.feed.clock_offset_ms : null;
  setText("clock-offset", (d.feed && d.feed.live ? "live · " : "") + "offset " +
    (offset === null || offset === undefined ? "—" : fmtInt(offset) + " ms"));

  // KPIs
  setText("kpi-ticks", fmtRate(d.rates.ticks_per_s));
  setText("kpi-orders", fmtRate(d.rates.orders_per_s));
  setText("kpi-ticks-total", "total " + fmtInt(d.totals.ticks));
  setText("kpi-orders-total", "total " + fmtInt(d.totals.orders));
  setText("kpi-fills", fmtInt(d.totals.fills));
  setText("kpi-fills-rate", fmtRate(d.rates.fills_per_s) + " / s");
  setText("kpi-rejects", fmtInt(d.totals.rejects), d.totals.rejects > 0 ? "neg" : "");
  const reasons = d.risk ? Object.entries(d.risk.rejects_by_reason).sort((a, b) => b[1] - a[1]) : [];
  setText("kpi-rejects-top", reasons.length ? reasons[0][0] + " " + fmtInt(reasons[0][1]) : "none");
  // several settlement currencies (USDT and a coin): a figure per currency, never their sum
  const currencies = d.pnl.total === null ? Object.entries(d.pnl.by_currency || {}) : [];
  $("kpi-pnl").classList.toggle("several", currencies.length > 0);
  if (currencies.length) {
    setText("kpi-pnl-label", "PnL per currency");
    setText("kpi-pnl", currencies.map(([c, r]) => `${fmtCurrency(r.pnl, c)} ${c}`).join("\n"));
    setText("kpi-pnl-parts", currencies.map(([c, r]) => `${c}: ${r.symbols.join(", ")}`).join(" · "));
  } else {
    setText("kpi-pnl-label", `PnL (${d.pnl.unit || "quote"})`);
    setText("kpi-pnl", fmtMoney(d.pnl.total), signClass(d.pnl.total));
    setText("kpi-pnl-parts", `realized ${fmtMoney(d.pnl.realized)} · unrealized ${fmtMoney(d.pnl.unrealized)} · fees ${fmtMoney(d.pnl.fees, false)}`);
  }
  const t2o = d.latency.find((l) => l.stage === "tick_to_order") || d.latency.find((l) => /tick_to/.test(l.stage));
  setText("kpi-t2o", t2o ? fmtNs(t2o.p99_ns) : "—");
  setText("kpi-t2o-p50", t2o ? "p50 " + fmtNs(t2o.p50_ns) + " · n " + fmtInt(t2o.count) : "no samples");
  sparkline($("spark-ticks"), d.history.map((p) => p.ticks_per_s), "#3fa7ff");
  sparkline($("spark-orders"), d.history.map((p) => p.orders_per_s), "#a98bff");

  // PnL chart
  // with several currencies the curve is the first currency's (the tile has each)
  const chartCurrency = currencies.length ? currencies[0][0] : null;
  pnlChart($("pnl-chart"), chartCurrency
    ? d.history.map((p) => ({ ...p, pnl: (p.pnl_by_currency || {})[chartCurrency] ?? null })) : d.history);
  if (d.history.length > 1) {
    const secs = d.history[d.history.length - 1].t - d.history[0].t;
    setText("pnl-range", (chartCurrency ? chartCurrency + ", " : "") + "last "
      + (secs >= 120 ? (secs / 60).toFixed(0) + " min" : secs.toFixed(0) + " s"));
  }

  // latency table
  const maxNs = Math.max(1, ...d.latency.map((l) => l.p999_ns || 0));
  const logScale = (ns) => (ns && ns > 0 ? (Math.log10(ns) / Math.log10(maxNs)) * 100 : 0);
  rows($("latency-table").tBodies[0], d.latency.map((l) => `<tr>
      <td title="${esc(l.name)}">${esc(l.worker)}<span class="dim">.</span>${esc(l.stage)}</td>
      <td class="r dim">${fmtInt(l.count)}</td>
      <td class="r">${fmtNs(l.p50_ns)}</td><td class="r">${fmtNs(l.p99_ns)}</td><td class="r">${fmtNs(l.p999_ns)}</td>
      <td><div class="lat-bar"><span class="p999" data-w="${logScale(l.p999_ns).toFixed(1)}"></span><span class="p99" data-w="${logScale(l.p99_ns).toFixed(1)}"></span><span class="p50" data-w="${logScale(l.p50_ns).toFixed(1)}"></span></div></td>
    </tr>`), 6, "no latency histograms yet");

  // rings
  const ringsEl = $("rings");
  ringsEl.innerHTML = d.rings.length ? d.rings.map((r) => {
    const pct = (r.ratio * 100);
    return `<div class="ring"><div class="name" title="${esc(r.producer)} → ${esc(r.consumer)}">${esc(r.name)}</div>
      <div class="meter"><span class="${pct > 75 ? "warn" : ""}" data-w="${Math.max(0.5, pct).toFixed(1)}"></span></div>
      <div class="nums"><b>${fmtInt(r.occupancy)}</b>/${fmtInt(r.capacity)} · w <b class="${r.full_waits ? "neg" : ""}">${fmtInt(r.full_waits)}</b> · d <b class="${r.drops ? "neg" : ""}">${fmtInt(r.drops)}</b></div></div>`;
  }).join("") : `<div class="dim">no rings</div>`;
  applyWidths(ringsEl);
  applyWidths($("latency-table"));

  // workers
  const up = d.workers.filter((w) => w.up).length;
  setText("workers-summary", `${up}/${d.workers.length} up`);
  rows($("workers-table").tBodies[0], d.workers.map((w) => `<tr>
      <td><span class="dot ${w.up ? "up" : w.state === "failed" ? "down" : "idle"}"></span></td>
      <td>${esc(w.name)}</td><td><span class="state ${esc(w.state)}">${esc(w.state)}</span></td>
      <td class="r dim">${w.pid || "—"}</td>
      <td class="r">${w.heartbeat_age_s === null ? "—" : (w.heartbeat_age_s * 1000).toFixed(0) + " ms"}</td>
      <td class="r ${w.restarts ? "neg" : "dim"}">${fmtInt(w.restarts)}</td><td class="r">${fmtInt(w.work)}</td></tr>`), 7, "no workers");

  // positions
  setText("strategies-summary", d.strategies.length ? `${d.strategies.length} strategies` : "");
  rows($("positions-table").tBodies[0], d.positions.map((p) => `<tr>
      <td>${esc(p.strategy)}</td><td class="dim">${esc(p.symbol)}</td>
      <td class="r ${signClass(p.quantity)}">${fmtQty(p.quantity)}${unitTag(p.qty_unit)}</td>
      <td class="r">${fmtPrice(p.avg_price)}</td><td class="r dim">${fmtPrice(p.mark_price)}</td>
      <td class="r ${signClass(p.realized_pnl)}">${fmtPnl(p.realized_pnl, p)}${unitTag(p.pnl_unit)}</td>
      <td class="r ${signClass(p.unrealized_pnl)}">${fmtPnl(p.unrealized_pnl, p)}${unitTag(p.pnl_unit)}</td></tr>`), 7, "flat: no positions");

  // per symbol: strategies on one symbol added up (a position is in its symbol's units)
  rows($("symbols-table").tBodies[0], (d.symbols || []).map((s) => `<tr>
      <td>${esc(s.symbol)}</td><td class="r ${signClass(s.quantity)}">${fmtQty(s.quantity)}</td>
      <td class="r dim">${fmtPrice(s.mark_price)}</td>
      <td class="r ${signClass(s.realized_pnl)}">${fmtMoney(s.realized_pnl)}</td>
      <td class="r ${signClass(s.unrealized_pnl)}">${fmtMoney(s.unrealized_pnl)}</td>
      <td class="r">${fmtMoney(s.fees, false)}</td>
      <td class="r ${signClass(s.pnl)}">${fmtMoney(s.pnl)}</td></tr>`), 7, "no positions");

  rows($("strategies-table").tBodies[0], d.strategies.map((s) => `<tr>
      <td>${esc(s.name)}</td><td><span class="state ${esc(s.state)}">${esc(s.state)}</span></td>
      <td class="r">${fmtInt(s.signals)}</td><td class="r">${fmtInt(s.intents)}</td><td class="r">${fmtInt(s.fills)}</td>
      <td class="r ${s.rejects ? "neg" : "dim"}">${fmtInt(s.rejects)}</td><td class="r">${fmtInt(s.open_orders)}</td></tr>`), 7, "no strategies");

  // risk
  const r = d.risk;
  const kill = r ? r.kill_switch : false;
  const kb = $("kill-badge");
  kb.textContent = kill ? "KILL SWITCH ON" : "KILL SWITCH OFF";
  kb.className = "pill " + (kill ? "alarm" : "ok");
  const rk = $("risk-kill");
  rk.textContent = kill ? "ON" : "OFF";
  rk.className = "pill " + (kill ? "alarm" : "ok");
  const btn = $("kill-button");
  btn.textContent = kill ? "Release kill switch" : "Activate kill switch";
  btn.className = "btn danger" + (kill ? " release" : "");
  btn.disabled = !r;
  const halted = r && (r.kill_switch || r.trading_state !== "active");
  const banner = $("halt-banner");
  banner.classList.toggle("hidden", !halted);
  if (halted) {
    const who = r.persisted && r.persisted.changed_by ? ` (set by ${r.persisted.changed_by} via ${r.persisted.source})` : "";
    const what = r.kill_switch ? "kill switch ON" : "trading state " + r.trading_state;
    banner.textContent = (d.running ? "Trading halted: " : "No platform running; the next start begins halted: ")
      + what + who + ". No order is sent until it is released.";
  }
  const ts = $("trading-state");
  ts.textContent = r ? r.trading_state.toUpperCase() : "NO RISK STATE";
  ts.className = "pill " + (!r ? "dimpill" : r.trading_state === "active" ? "ok" : r.trading_state === "halted" ? "down" : "idle");
  setText("risk-state", r ? r.trading_state : "—");
  setText("risk-checked", r ? `${fmtInt(r.orders_checked)} / ${fmtInt(r.orders_approved)}` : "—");
  setText("risk-open", r ? fmtInt(r.open_orders) : "—");
  setText("risk-daily", r ? fmtMoney(r.daily_pnl) : "—", r ? signClass(r.daily_pnl) : "");
  setText("risk-changed", r && r.changed_unix_ns ? "changed " + fmtTime(r.changed_unix_ns) : "");
  $("rejects").innerHTML = reasons.map(([k, v]) => `<span class="chip">${esc(k)} ${fmtInt(v)}</span>`).join("");

  // orders and trades
  setText("orders-count", d.orders.length ? `latest ${d.orders.length}` : "");
  rows($("orders-table").tBodies[0], d.orders.map((o) => `<tr>
      <td class="dim">${fmtTime(o.updated_unix_ns || o.created_unix_ns)}</td><td>${esc(o.strategy)}</td>
      <td class="side-${esc(o.side)}">${esc(o.side)}</td><td class="r">${fmtPrice(o.price)}</td>
      <td class="r">${fmtQty(o.qty)}</td><td class="r dim">${fmtQty(o.filled_qty)}</td>
      <td><span class="state ${esc(o.state)}">${esc(o.state)}</span>${o.reason ? ` <span class="dim">${esc(o.reason)}</span>` : ""}</td></tr>`), 7, "no orders yet");
  setText("trades-count", d.trades.length ? `latest ${d.trades.length}` : "");
  rows($("trades-table").tBodies[0], d.trades.map((t) => `<tr>
      <td class="dim">${fmtTime(t.ts_unix_ns)}</td><td>${esc(t.strategy)}</td>
      <td class="side-${esc(t.side)}">${esc(t.side)}</td><td class="r">${fmtPrice(t.price)}</td>
      <td class="r">${fmtQty(t.qty)}</td><td class="r dim">${fmtNum(t.fee, 4)}</td></tr>`), 6, "no trades yet");
  body.dataset.updates = String((parseInt(body.dataset.updates || "0", 10) + 1));
}

// ---------------------------------------------------------------- polling and actions

function authHeaders() { return token ? { Authorization: "Bearer " + token } : {}; }

async function poll() {
  try {
    const res = await fetch("/dashboard/data", { headers: authHeaders(), cache: "no-store" });
    if (res.status === 401 || res.status === 403) {
      $("token-box").classList.remove("hidden");
      setText("risk-msg", "this dashboard needs a token with read access");
      throw new Error("unauthorised");
    }
    if (!res.ok) throw new Error("HTTP " + res.status);
    lastData = await res.json();
    failures = 0;
    render(lastData);
  } catch (e) {
    failures += 1;
    if (failures > 2) {
      const pill = $("status-pill");
      pill.textContent = "DISCONNECTED";
      pill.className = "pill down";
    }
  } finally {
    setTimeout(poll, REFRESH_MS);
  }
}

async function pollAudit() {
  if (!token) { setText("audit-msg", "paste a Risk or Ops token to see the audit"); return; }
  try {
    const res = await fetch("/api/audit?limit=10", { headers: authHeaders(), cache: "no-store" });
    const out = await res.json();
    if (!res.ok) { setText("audit-msg", (out.message || "refused") + " (HTTP " + res.status + ")"); return; }
    setText("audit-msg", `${out.total} action(s)` + (out.pending_delivery ? " · database down: rows wait in the journal" : ""));
    rows($("audit-table").tBodies[0], out.audit.map((a) => `<tr>
      <td class="dim">${fmtTime(a.ts_unix_ns)}</td><td>${esc(a.action)}${a.target ? " " + esc(a.target) : ""}</td>
      <td>${esc(a.actor)}${a.role ? ` <span class="dim">${esc(a.role)}</span>` : ""}</td><td>${esc(a.source)}</td>
      <td>${esc(a.previous)} → ${esc(a.new)}</td>
      <td><span class="state ${a.outcome === "refused" ? "rejected" : "filled"}">${esc(a.outcome)}</span></td></tr>`), 6, "no control actions yet");
  } catch (e) {
    setText("audit-msg", "audit unavailable");
  }
}

async function toggleKill() {
  if (!lastData || !lastData.risk) return;
  if (!token) {
    $("token-box").classList.remove("hidden");
    setText("risk-msg", "paste a Risk or Ops token to use the kill switch");
    return;
  }
  const want = !lastData.risk.kill_switch;
  if (want && !confirm("Activate the kill switch? New orders are rejected and open orders cancelled.")) return;
  const res = await fetch("/api/risk/kill-switch", {
    method: "POST",
    headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()),
    body: JSON.stringify({ active: want, reason: "dashboard" }),
  });
  const out = await res.json().catch(() => ({}));
  if (res.ok) {
    setText("risk-msg", "kill switch " + (want ? "activated" : "released"));
    pollAudit();
  } else {
    setText("risk-msg", (out.message || "refused") + " (HTTP " + res.status + ")");
    if (res.status === 401) $("token-box").classList.remove("hidden");
  }
}

$("kill-button").addEventListener("click", toggleKill);
$("token-save").addEventListener("click", () => {
  token = $("token-input").value.trim();
  sessionStorage.setItem("hftshm.token", token);
  $("token-input").value = "";
  $("token-box").classList.add("hidden");
  setText("risk-msg", token ? "token set for this tab" : "");
  pollAudit();
});
setInterval(pollAudit, 5000);
pollAudit();
setInterval(() => { $("clock").textContent = new Date().toTimeString().slice(0, 8); }, 250);
$("refresh-s").textContent = (REFRESH_MS / 1000).toString();
if (TOKEN_REQUIRED && !token) $("token-box").classList.remove("hidden");
poll();
