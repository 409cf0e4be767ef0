// pytest-swarm live dashboard: the page's state, kept from the server-sent events, and its
// redraw. Charts are swarmCharts' (charts.js, the HTML report's own). Every text from the run
// goes through textContent, never innerHTML: request names are the target's URLs.
"use strict";
(function () {
  const token = document.querySelector('meta[name="swarm-token"]').content;
  const MAX_POINTS = 20000; // per series: a page open for days must not grow without bound
  const CHART_NAMES = 4; // per-request p95 charts, for the busiest names
  const state = {running: new Map(), order: [], finished: [], omitted: 0, over: false};
  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const n = document.createElement(tag);
    if (text != null) n.textContent = text;
    if (cls) n.className = cls;
    return n;
  }

  const num = (v, digits) => (typeof v === "number"
    ? v.toLocaleString("en-US", {maximumFractionDigits: digits || 0, minimumFractionDigits: digits || 0})
    : "–");
  const ms = (v) => (typeof v !== "number" ? "–" : v < 10000 ? num(v, 1) + " ms" : num(v / 1000, 2) + " s");
  const pct = (v) => (typeof v === "number" ? num(v * 100, 2) + " %" : "–");
  const secs = (v) => {
    if (typeof v !== "number") return "–";
    const s = Math.round(v);
    return s < 60 ? s + " s" : Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
  };

  // -- state ---------------------------------------------------------------------------

  function mergePoints(old, fresh) {
    if (!fresh || !fresh.length) return old || [];
    const first = fresh[0].t;
    const kept = (old || []).filter((p) => p.t < first);
    const out = kept.concat(fresh);
    return out.length > MAX_POINTS ? out.slice(out.length - MAX_POINTS) : out;
  }

  function track(test) {
    state.order = state.order.filter((t) => t !== test);
    state.order.push(test);
  }

  const handlers = {
    state(data) {
      state.running = new Map();
      state.order = [];
      for (const doc of data.running) { state.running.set(doc.test, doc); track(doc.test); }
      state.finished = data.finished;
      state.omitted = data.finished_omitted;
      state.over = data.session_finished;
    },
    started(data) {
      state.running.set(data.test, Object.assign({timeline: [], timeline_requests: {}}, data));
      track(data.test);
    },
    progress(data) {
      const doc = state.running.get(data.test) || {timeline: [], timeline_requests: {}};
      const timeline = mergePoints(doc.timeline, data.timeline);
      const perName = Object.assign({}, doc.timeline_requests);
      for (const name in data.timeline_requests) perName[name] = mergePoints(perName[name], data.timeline_requests[name]);
      state.running.set(data.test, Object.assign(doc, data, {timeline: timeline, timeline_requests: perName}));
      if (!state.order.includes(data.test)) track(data.test);
    },
    finished(data) {
      state.running.delete(data.test);
      state.order = state.order.filter((t) => t !== data.test);
      state.finished.push(data);
    },
    session() { state.over = true; },
  };

  // -- drawing -------------------------------------------------------------------------

  function table(node, header, rows) {
    node.replaceChildren();
    const head = el("tr");
    header.forEach((h, i) => head.appendChild(el("th", h, i === 0 ? "name" : "")));
    node.appendChild(head);
    for (const row of rows) {
      const tr = el("tr", null, row.cls || "");
      row.cells.forEach((c, i) => {
        const td = el("td", null, i === 0 ? "name" : "");
        if (c instanceof Node) td.appendChild(c); else td.textContent = c;
        tr.appendChild(td);
      });
      node.appendChild(tr);
    }
  }

  function verdict(outcome) {
    return el("span", String(outcome || "?").toUpperCase(), "verdict " + String(outcome || ""));
  }

  function tile(label, value, metric, cls) {
    const t = el("div", null, "tile" + (cls ? " " + cls : ""));
    t.dataset.metric = metric;
    t.appendChild(el("div", value, "value"));
    t.appendChild(el("div", label, "label"));
    return t;
  }

  function drawNow(doc) {
    $("now-name").textContent = doc.name || doc.test;
    $("now-name").title = doc.test;
    const settings = Object.entries(doc.settings || {}).map(([k, v]) => {
      if (k === "load") return String(v);
      if (k === "abort" && Array.isArray(v)) {
        return v.length ? "aborts on " + v.map((r) => (r.objectives || []).join(", ")).join("; ") : "";
      }
      return k + " " + (typeof v === "object" ? JSON.stringify(v) : v);
    }).filter((s) => s);
    if (doc.worker_count) settings.push(doc.worker_count + (doc.worker_count === 1 ? " process" : " workers"));
    $("now-settings").textContent = [doc.test].concat(settings).join("  ·  ");
    const elapsed = doc.elapsed || 0, total = doc.duration || 0;
    $("bar").style.width = (total > 0 ? Math.min(100, (100 * elapsed) / total) : 0) + "%";
    $("now-progress").textContent = secs(elapsed) + " of " + secs(total) + (doc.stage ? "  ·  " + doc.stage : "");

    const tl = doc.timeline || [];
    const last = tl.length ? tl[tl.length - 1] : {};
    const total_ = doc.total || {};
    const rps = last.rps != null ? last.rps : last.requests;
    const fps = last.fps != null ? last.fps : last.failures;
    const users = last.users != null ? last.users : doc.users;
    const open = doc.settings && (doc.settings.arrival_rate != null || doc.settings.model === "open");
    const tiles = $("tiles");
    tiles.replaceChildren(
      tile("users", num(users), "users"),
      ...(open ? [tile("arrivals / s", num(Number(doc.settings.arrival_rate), 1), "arrival_rate")] : []),
      tile("requests / s", num(rps, 1), "rps"),
      tile("failures / s", num(fps, 1), "fps", fps > 0 ? "bad" : ""),
      tile("requests so far", num(total_.count), "requests"),
      tile("error rate", pct(total_.error_ratio), "error_rate", total_.failures > 0 ? "bad" : ""),
      tile("p50 so far", ms(total_.p50_ms), "p50"),
      tile("p95 so far", ms(total_.p95_ms), "p95"),
      tile("p99 so far", ms(total_.p99_ms), "p99"),
    );
    $("problems").textContent = (doc.problems || []).join("; ");

    const box = $("charts");
    box.replaceChildren();
    const names = Object.keys(doc.requests || {})
      .sort((a, b) => (doc.requests[b].count || 0) - (doc.requests[a].count || 0)).slice(0, CHART_NAMES);
    const perName = {};
    for (const n of names) if (doc.timeline_requests && doc.timeline_requests[n]) perName[n] = doc.timeline_requests[n];
    window.swarmCharts.timelineCharts(box, {timeline: tl, timeline_requests: perName});
    if (doc.distribution && Object.keys(doc.distribution).length) {
      window.swarmCharts.distributionChart(box, doc.distribution);
    }

    const objectives = doc.objectives || [];
    table($("objectives"), ["objective", "measured", "state"], objectives.map((o) => ({
      cells: [o.objective, o.measured, el("span", o.met ? "met" : "MISSED", o.met ? "met" : "missed")],
    })));
    if (!objectives.length) table($("objectives"), ["objective"], [{cells: ["none: plain asserts decide (swarm.run)"]}]);

    const workers = typeof doc.workers === "object" && doc.workers ? doc.workers : {};
    table($("workers"), ["worker", "users", "CPU", "event-loop lag"], Object.keys(workers).sort().map((w) => {
      const m = workers[w] || {};
      const hot = m.cpu >= 90 || m.lag >= 0.1;
      return {cls: hot ? "hot" : "", cells: [w, num(m.users), num(m.cpu, 0) + " %", ms(typeof m.lag === "number" ? m.lag * 1000 : null)]};
    }));
    const gen = doc.generator || {};
    $("health").textContent = gen.saturated ? "generator saturated: latencies are unreliable" : "";

    const rows = Object.keys(doc.requests || {}).map((n) => ({name: n, e: doc.requests[n]}));
    rows.push({name: "Total", e: total_, cls: "total"});
    table($("requests"), ["name", "requests", "failures", "req/s", "p50", "p90", "p95", "p99", "max"], rows.map((r) => ({
      cls: r.cls,
      cells: [r.name, num(r.e.count), num(r.e.failures), num(r.e.rps, 1), ms(r.e.p50_ms), ms(r.e.p90_ms), ms(r.e.p95_ms), ms(r.e.p99_ms), ms(r.e.max_ms)],
    })));
    const hidden = (doc.names || 0) - Object.keys(doc.requests || {}).length;
    $("names-note").textContent = hidden > 0 ? hidden + " less busy request names not shown" : "";

    const errors = $("errors");
    errors.replaceChildren();
    if ((doc.errors || []).length) {
      errors.appendChild(el("h3", "Most frequent errors"));
      const list = el("ul", null, "errors");
      for (const g of doc.errors) list.appendChild(el("li", num(g.count) + " × [" + g.name + "] " + g.kind + ": " + g.message));
      errors.appendChild(list);
    }
    const stop = $("stop");
    stop.hidden = !doc.stoppable;
    stop.dataset.test = doc.test;
    if (stop.dataset.pending !== doc.test) { stop.disabled = false; stop.textContent = "Stop this load test"; }
  }

  function drawSession() {
    const rows = [];
    for (const test of state.order) {
      const d = state.running.get(test);
      if (d) rows.push({cells: [test, verdict("running"), num((d.total || {}).count), ms((d.total || {}).p95_ms), "in progress"]});
    }
    for (const f of state.finished.slice().reverse()) {
      const t = f.total || {};
      const detail = f.reason || (f.objectives || []).map((o) => (o.met ? "met " : "MISSED ") + o.objective + " (" + o.measured + ")").join("; ");
      rows.push({cells: [f.test, verdict(f.outcome), num(t.count), ms(t.p95_ms), detail]});
    }
    if (!rows.length) rows.push({cells: ["no load test has run yet", "", "", "", ""]});
    table($("session"), ["load test", "verdict", "requests", "p95", "why"], rows);
    if (state.omitted) $("session").appendChild(el("caption", state.omitted + " earlier load tests not listed"));
  }

  let queued = false;
  function redraw() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      const current = state.order.length ? state.running.get(state.order[state.order.length - 1]) : null;
      $("now").hidden = !current;
      $("idle").hidden = !!current;
      $("idle").firstChild.textContent = state.over ? "The session is over: its verdicts are below."
        : state.finished.length ? "No load test running now; waiting for the next one…"
        : "Waiting for a load test to start…";
      if (current) drawNow(current);
      drawSession();
    });
  }

  // -- the stream ----------------------------------------------------------------------

  function connection(text, cls) {
    const c = $("connection");
    c.textContent = text;
    c.className = "pill " + cls;
  }

  const source = new EventSource("events?token=" + encodeURIComponent(token));
  for (const name in handlers) {
    source.addEventListener(name, (ev) => {
      handlers[name](JSON.parse(ev.data));
      document.body.dataset.lastEvent = ev.lastEventId;
      connection(state.over ? "session finished" : "live", state.over ? "over" : "live");
      redraw();
    });
  }
  source.onopen = () => connection(state.over ? "session finished" : "live", state.over ? "over" : "live");
  source.onerror = () => connection(state.over ? "session finished" : "reconnecting…", state.over ? "over" : "connecting");

  $("stop").addEventListener("click", () => {
    const stop = $("stop");
    const test = stop.dataset.test;
    stop.disabled = true;
    stop.dataset.pending = test;
    stop.textContent = "Stopping…";
    fetch("api/stop", {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Swarm-Token": token},
      body: JSON.stringify({test: test}),
    }).then((r) => { if (!r.ok) stop.textContent = "Not running any more"; })
      .catch(() => { stop.textContent = "Stop failed"; });
  });
  redraw();
})();
