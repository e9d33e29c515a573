// kmonitor dashboard: a lag chart and a partition table per module, refreshed from
// api/history and api/partitions every few seconds. When a refresh fails the last
// data stays on screen under an error banner.
"use strict";
(function () {
  const REFRESH_MS = 5000;
  const TIMEOUT_MS = 4000;
  const MINUTES = 60;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const W = 560, H = 180, M = { l: 60, r: 14, t: 10, b: 26 }; // chart box, user units
  const RANK = { OK: 0, WARN: 1, STALL: 2, REWIND: 3, STOP: 4, OUT_OF_RANGE: 5 };

  const state = { history: null, rows: null, updated: null, unit: "records" };
  const sections = new Map(); // "cluster/module" -> section elements
  let sectionIds = 0;
  const $ = (id) => document.getElementById(id);
  const ui = { modules: $("modules"), updated: $("updated"), error: $("error"), empty: $("empty") };
  const numFmt = new Intl.NumberFormat();
  const shortFmt = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function duration(s) {
    if (!(s > 0)) return "0 s";
    if (s < 10) return s.toFixed(1) + " s";
    if (s < 60) return Math.round(s) + " s";
    const pad = (n) => String(n).padStart(2, "0");
    const r = Math.round(s);
    if (r < 3600) return Math.floor(r / 60) + "m " + pad(r % 60) + "s";
    if (r < 86400) return Math.floor(r / 3600) + "h " + pad(Math.floor(r / 60) % 60) + "m";
    return Math.floor(r / 86400) + "d " + pad(Math.floor(r / 3600) % 24) + "h";
  }

  const fmtValue = (v, unit) => (unit === "seconds" ? duration(v) : numFmt.format(v));
  function fmtAxis(v, unit) {
    if (unit !== "seconds") return shortFmt.format(v);
    if (v >= 3600 && v % 3600 === 0) return v / 3600 + "h";
    if (v >= 60 && v % 60 === 0) return v / 60 + "m";
    return duration(v);
  }

  // niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten, so axis labels are round.
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  // niceSeconds rounds s up to a whole number of seconds, minutes or hours that halves evenly.
  function niceSeconds(s) {
    for (const c of [2, 4, 10, 20, 30, 60, 120, 240, 600, 1200, 1800, 3600, 7200, 14400, 21600, 43200, 86400]) if (s <= c) return c;
    return 86400 * niceCeil(s / 86400);
  }

  async function getJSON(url, signal) {
    const res = await fetch(url, { signal, cache: "no-store", headers: { Accept: "application/json" } });
    if (!res.ok) throw new Error(url.split("?")[0] + " answered HTTP " + res.status);
    return res.json();
  }

  async function refresh() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    let data;
    try {
      data = await Promise.all([
        getJSON("api/history?minutes=" + MINUTES, ctl.signal),
        getJSON("api/partitions", ctl.signal),
      ]);
    } catch (err) {
      showError(err.name === "AbortError" ? "no answer within " + TIMEOUT_MS / 1000 + " s" : err.message);
      return;
    } finally {
      clearTimeout(timer);
      setTimeout(refresh, REFRESH_MS);
    }
    [state.history, state.rows] = data;
    state.updated = new Date();
    showError(null);
    render();
  }

  function showError(reason) {
    ui.error.hidden = reason === null;
    ui.modules.classList.toggle("old", reason !== null);
    if (reason === null) return;
    const since = state.updated ? "Showing data from " + state.updated.toLocaleTimeString() + "." : "No data yet.";
    ui.error.textContent = "Cannot reach kmonitor (" + reason + "). " + since + " Retrying every " + REFRESH_MS / 1000 + " s.";
  }

  function render() {
    if (!state.updated) return;
    const groups = new Map();
    const group = (key) => {
      if (!groups.has(key)) groups.set(key, { points: [], rows: [] });
      return groups.get(key);
    };
    let end = 0;
    for (const [key, pts] of Object.entries(state.history || {})) {
      const g = group(key);
      g.points = (pts || []).map((p) => ({ t: Date.parse(p.t), lag: p.lag, seconds: p.seconds }))
        .filter((p) => !isNaN(p.t)).sort((a, b) => a.t - b.t);
      if (g.points.length) end = Math.max(end, g.points[g.points.length - 1].t);
    }
    for (const r of state.rows || []) group(r.cluster + "/" + r.module).rows.push(r);
    // The x axis ends at the newest sample, so a skewed browser clock does not shift it.
    if (!end) end = state.updated.getTime();

    for (const [key, s] of sections) {
      if (!groups.has(key)) { s.root.remove(); sections.delete(key); }
    }
    for (const key of [...groups.keys()].sort()) {
      if (!sections.has(key)) sections.set(key, makeSection(key));
      const s = sections.get(key);
      ui.modules.appendChild(s.root); // appending in sorted order keeps the order
      fillSection(s, key, groups.get(key), end);
    }
    ui.empty.hidden = groups.size > 0;
    ui.updated.textContent = "Last updated " + state.updated.toLocaleTimeString();
    ui.updated.dateTime = state.updated.toISOString();
  }

  function title(key) {
    const i = key.indexOf("/");
    return i < 0 ? key : key.slice(0, i) + " / " + key.slice(i + 1);
  }

  function makeSection(key) {
    const id = "module-" + ++sectionIds;
    const root = el("section", "module");
    root.setAttribute("aria-labelledby", id);
    root.dataset.module = key;
    const head = root.appendChild(el("header"));
    const h2 = head.appendChild(el("h2", "", title(key)));
    h2.id = id;
    h2.title = title(key); // the name may be cut short on screen
    const status = head.appendChild(el("span", "badge"));
    const summary = head.appendChild(el("p", "summary"));
    const body = root.appendChild(el("div", "body"));
    const fig = body.appendChild(el("figure"));
    const chart = fig.appendChild(svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img" }));
    const caption = fig.appendChild(el("figcaption"));
    const table = body.appendChild(el("div", "parts")).appendChild(el("table"));
    table.appendChild(el("caption", "visually-hidden", "Partitions of " + title(key)));
    const hr = table.appendChild(el("thead")).appendChild(el("tr"));
    for (const [name, cls] of [["Partition", "num"], ["Topic"], ["Lag", "num"], ["Time lag", "num"], ["Status"], ["Owner"], ["Notes"]]) {
      const th = hr.appendChild(el("th", cls || "", name));
      th.scope = "col";
    }
    const tbody = table.appendChild(el("tbody"));
    return { root, status, summary, chart, caption, table, tbody };
  }

  function fillSection(s, key, g, end) {
    const unit = state.unit;
    let worst = null, lag = 0, secs = 0, stale = 0;
    for (const r of g.rows) {
      if (worst === null || (RANK[r.status] ?? 0) > (RANK[worst] ?? 0)) worst = r.status;
      if (!r.no_commit) { lag += r.lag; secs = Math.max(secs, r.time_lag_seconds); }
      if (r.stale) stale++;
    }
    s.status.hidden = worst === null;
    s.status.className = "badge s-" + worst;
    s.status.textContent = worst || "";
    const parts = g.rows.length === 1 ? "1 partition" : g.rows.length + " partitions";
    s.summary.textContent = `lag ${numFmt.format(lag)} records · time lag ${duration(secs)} · ${parts}` + (stale ? ` · ${stale} stale` : "");
    drawChart(s, key, g.points, unit, end);

    s.tbody.replaceChildren();
    for (const r of g.rows) {
      const tr = s.tbody.appendChild(el("tr", r.stale ? "stale" : ""));
      tr.dataset.partition = `${r.cluster}/${r.module}/${r.topic}/${r.partition}`;
      tr.appendChild(el("td", "num", String(r.partition)));
      tr.appendChild(el("td", "topic", r.topic)).title = r.topic;
      tr.appendChild(el("td", "num" + (r.no_commit ? " muted" : ""), r.no_commit ? "—" : numFmt.format(r.lag)));
      tr.appendChild(el("td", "num" + (r.no_commit ? " muted" : ""), r.no_commit ? "—" : duration(r.time_lag_seconds)));
      tr.appendChild(el("td")).appendChild(el("span", "badge s-" + r.status, r.status));
      const owner = tr.appendChild(el("td", r.owner ? "" : "muted")).appendChild(el("span", "owner", r.owner || "none"));
      if (r.owner) owner.title = r.owner;
      const notes = tr.appendChild(el("td"));
      if (r.stale) {
        const b = notes.appendChild(el("span", "badge note", "stale"));
        b.title = "Kafka or ZooKeeper unreachable: last known values";
      }
      if (r.no_commit) notes.appendChild(el("span", "badge note", "no commit yet"));
      if (r.out_of_range) {
        const b = notes.appendChild(el("span", "badge note", "offset out of range"));
        b.title = "The committed offset is outside the log (topic recreated, log truncated or records deleted " +
          "before they were pushed); lag counts the whole log from its start";
      }
    }
  }

  // spanMinutes is the chart's time span: the last hour, or less while kmonitor has
  // not been running that long, so a fresh start does not draw a sliver at "now".
  function spanMinutes(pts, end) {
    const first = pts.length ? pts[0].t : end - MINUTES * 60000;
    const have = (end - first) / 60000;
    for (const m of [1, 4, 12, 20]) if (have <= m) return m;
    return MINUTES;
  }

  function drawChart(s, key, pts, unit, end) {
    const span = spanMinutes(pts, end);
    const start = end - span * 60000;
    const val = (p) => (unit === "seconds" ? p.seconds : p.lag);
    const vis = pts.filter((p) => p.t >= start && p.t <= end);
    const vals = vis.map(val);
    const min = vals.length ? Math.min(...vals) : 0, max = vals.length ? Math.max(...vals) : 0;
    const top = unit === "seconds" ? niceSeconds(max) : niceCeil(Math.max(max, 1));
    const x = (t) => M.l + ((t - start) / (end - start)) * (W - M.l - M.r);
    const y = (v) => H - M.b - (v / top) * (H - M.t - M.b);
    const c = s.chart;
    c.replaceChildren();

    for (const v of [0, top / 2, top]) {
      c.appendChild(svg("line", { class: v ? "grid" : "axis", x1: M.l, x2: W - M.r, y1: y(v), y2: y(v) }));
      c.appendChild(svg("text", { class: "end", x: M.l - 6, y: y(v) + 4 }, fmtAxis(v, unit)));
    }
    for (let i = 4; i >= 0; i--) {
      const secs = (i * span * 60) / 4;
      const tx = x(end - secs * 1000);
      const text = !secs ? "now" : secs < 60 ? "−" + secs + " s" : "−" + secs / 60 + " min";
      c.appendChild(svg("line", { class: "axis", x1: tx, x2: tx, y1: H - M.b, y2: H - M.b + 4 }));
      c.appendChild(svg("text", { class: "mid", x: tx, y: H - 8 }, text));
    }
    c.appendChild(svg("text", { class: "mid", transform: `translate(12 ${(H - M.b + M.t) / 2}) rotate(-90)` }, unit));

    // Split the line where samples are missing (kmonitor down), judged against the usual spacing.
    const gaps = vis.slice(1).map((p, i) => p.t - vis[i].t).sort((a, b) => a - b);
    const maxGap = gaps.length ? 3 * gaps[Math.floor(gaps.length / 2)] : Infinity;
    let run = [];
    const flush = () => {
      if (run.length === 1) {
        c.appendChild(svg("circle", { class: "dot", cx: x(run[0].t), cy: y(val(run[0])), r: 2.5 }));
      } else if (run.length > 1) {
        const d = run.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + " " + y(val(p)).toFixed(1)).join("");
        const base = y(0).toFixed(1);
        c.appendChild(svg("path", { class: "area", d: `${d}L${x(run[run.length - 1].t).toFixed(1)} ${base}L${x(run[0].t).toFixed(1)} ${base}Z` }));
        c.appendChild(svg("path", { class: "line", d }));
      }
      run = [];
    };
    vis.forEach((p, i) => {
      if (i && p.t - vis[i - 1].t > maxGap) flush();
      run.push(p);
    });
    flush();

    const label = unit === "seconds" ? "time lag" : "total lag";
    if (!vis.length) {
      c.appendChild(svg("text", { class: "mid nodata", x: (M.l + W - M.r) / 2, y: (H - M.b + M.t) / 2 }, "no samples in the last hour"));
      s.caption.textContent = `${label}: no samples in the last hour`;
    } else {
      const now = fmtValue(vals[vals.length - 1], unit);
      const over = span === MINUTES ? "the last hour" : `the last ${span} min`;
      s.caption.textContent = `${label} (${unit}) over ${over}: now ${now} · min ${fmtValue(min, unit)} · max ${fmtValue(max, unit)}`;
    }
    c.setAttribute("aria-label", `${title(key)}: ${s.caption.textContent}`);
  }

  function loadUnit() {
    try { return localStorage.getItem("kmonitor.unit") === "seconds" ? "seconds" : "records"; } catch (e) { return "records"; }
  }

  state.unit = loadUnit();
  for (const input of document.querySelectorAll('input[name="unit"]')) {
    input.checked = input.value === state.unit;
    input.addEventListener("change", () => {
      state.unit = input.value;
      try { localStorage.setItem("kmonitor.unit", state.unit); } catch (e) { /* private mode: not kept */ }
      render();
    });
  }
  refresh();
})();
