// pytest-swarm charts: small SVG line charts drawn from plain data, with no library and no
// network. The HTML report embeds its data; the live dashboard feeds the same functions.
// swarmCharts.line(el, {series: [{name, points: [[x, y], ...]}], xLabel, yLabel, logX, xFormat})
"use strict";
(function (root) {
  const NS = "http://www.w3.org/2000/svg";
  const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
  const W = 640, H = 236, L = 56, R = 12, T = 28, B = 34;

  function node(tag, attrs, parent) {
    const n = document.createElementNS(NS, tag);
    for (const k in attrs) n.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(n);
    return n;
  }

  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) hi = lo + 1;
    const raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const ticks = [], top = Math.ceil(hi / step - 1e-9) * step;
    for (let v = Math.ceil(lo / step) * step; v <= top + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
    return ticks;
  }

  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toPrecision(3) + "M";
    if (a >= 1e3) return (v / 1e3).toPrecision(3) + "k";
    return a >= 10 ? String(Math.round(v)) : String(+v.toPrecision(3));
  }

  function line(el, spec) {
    while (el.firstChild) el.removeChild(el.firstChild);
    const series = spec.series.filter((s) => s.points.length);
    const svg = node("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": spec.title || ""}, el);
    svg.classList.add("chart");
    if (!series.length) {
      node("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty"}, svg).textContent = "no data yet";
      return svg;
    }
    const tx = spec.logX ? (x) => Math.log10(x) : (x) => x;
    let x0 = Infinity, x1 = -Infinity, y1 = 0;
    for (const s of series) for (const [x, y] of s.points) {
      x0 = Math.min(x0, tx(x)); x1 = Math.max(x1, tx(x)); y1 = Math.max(y1, y);
    }
    if (!(x1 > x0)) x1 = x0 + 1;
    const yTicks = niceTicks(0, y1 || 1, 4), yTop = yTicks[yTicks.length - 1];
    const sx = (x) => L + ((tx(x) - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => H - B - (y / yTop) * (H - T - B);
    const grid = node("g", {class: "grid"}, svg);
    for (const v of yTicks) {
      node("line", {x1: L, x2: W - R, y1: sy(v), y2: sy(v)}, grid);
      node("text", {x: L - 6, y: sy(v) + 4, "text-anchor": "end"}, grid).textContent = fmt(v);
    }
    const xTicks = spec.logX ? spec.xTicks || [] : niceTicks(x0, x1, 6);
    for (const v of xTicks) {
      const x = spec.logX ? sx(v) : sx(v);
      if (x < L - 1 || x > W - R + 1) continue;
      node("line", {x1: x, x2: x, y1: T, y2: H - B, class: "v"}, grid);
      node("text", {x: x, y: H - B + 16, "text-anchor": "middle"}, grid)
        .textContent = spec.xFormat ? spec.xFormat(v) : fmt(v);
    }
    if (spec.xLabel) node("text", {x: W - R, y: H - 4, "text-anchor": "end", class: "label"}, svg).textContent = spec.xLabel;
    if (spec.yLabel) node("text", {x: 4, y: T - 6, class: "label"}, svg).textContent = spec.yLabel;
    series.forEach((s, i) => {
      const d = s.points.map(([x, y], j) => `${j ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
      const path = node("path", {d: d, fill: "none", stroke: s.colour || COLOURS[i % COLOURS.length], "stroke-width": 2}, svg);
      path.classList.add("series");
      node("title", {}, path).textContent = s.name;
    });
    const legend = node("g", {class: "legend"}, svg);
    let lx = L + 8;
    series.forEach((s, i) => {
      node("rect", {x: lx, y: 4, width: 10, height: 10, fill: s.colour || COLOURS[i % COLOURS.length]}, legend);
      const t = node("text", {x: lx + 14, y: 13}, legend);
      t.textContent = s.name;
      lx += 24 + 7 * s.name.length;
    });
    return svg;
  }

  // A load test's standard charts from its result document (the JSON of --swarm-json).
  function timelineCharts(container, doc) {
    const tl = doc.timeline || [];
    const names = Object.keys(doc.timeline_requests || {});
    const charts = [
      ["Requests and failures per second", "per s", [
        {name: "requests/s", points: tl.map((p) => [p.t, p.rps != null ? p.rps : p.requests])},
        {name: "failures/s", points: tl.map((p) => [p.t, p.fps != null ? p.fps : p.failures]), colour: "#dc2626"},
      ]],
      ["Latency percentiles (total)", "ms", ["p50_ms", "p95_ms", "p99_ms"]
        .filter((k) => tl.some((p) => p[k] != null))
        .map((k) => ({name: k.replace("_ms", ""), points: tl.map((p) => [p.t, p[k]])}))],
      ["Users", "users", [{name: "users", points: tl.map((p) => [p.t, p.users]), colour: "#16a34a"}]],
    ];
    // Per request name: one chart comparing the names' p95, then each busy name's p50/p95/p99
    // (at most MAX_NAME_CHARTS of them, busiest first: more charts than that is a wall).
    const MAX_NAME_CHARTS = 6;
    const busy = names
      .map((n) => [n, doc.timeline_requests[n].reduce((a, p) => a + (p.requests || 0), 0)])
      .sort((a, b) => b[1] - a[1]).map((x) => x[0]);
    if (names.length > 1) {
      charts.push(["p95 by request name", "ms", busy.slice(0, COLOURS.length).map((n) => ({
        name: n, points: doc.timeline_requests[n].map((p) => [p.t, p.p95_ms])}))]);
    }
    for (const name of busy.slice(0, MAX_NAME_CHARTS)) {
      const pts = doc.timeline_requests[name];
      charts.push([`Latency percentiles of ${name}`, "ms", ["p50_ms", "p95_ms", "p99_ms"]
        .filter((k) => pts.some((p) => p[k] != null))
        .map((k) => ({name: k.replace("_ms", ""), points: pts.map((p) => [p.t, p[k]])}))]);
    }
    for (const [title, yLabel, series] of charts) {
      const fig = document.createElement("figure");
      const cap = document.createElement("figcaption");
      cap.textContent = title;
      fig.appendChild(cap);
      container.appendChild(fig);
      line(fig, {series: series, xLabel: "seconds", yLabel: yLabel, title: title});
      fig.insertBefore(cap, fig.firstChild);
    }
  }

  function distributionChart(container, dist) {
    const fig = document.createElement("figure");
    container.appendChild(fig);
    const series = Object.keys(dist).map((name) => ({
      name: name,
      points: dist[name].map(([q, ms]) => [1 / (1 - Math.min(q, 99.9999) / 100), ms]),
    }));
    const ticks = [1, 10, 100, 1000, 10000, 100000];
    const labels = {1: "0%", 10: "90%", 100: "99%", 1000: "99.9%", 10000: "99.99%", 100000: "99.999%"};
    line(fig, {series: series, logX: true, xTicks: ticks, xFormat: (v) => labels[v],
               xLabel: "percentile", yLabel: "ms", title: "Latency by percentile"});
    const cap = document.createElement("figcaption");
    cap.textContent = "Latency by percentile (log scale, as HdrHistogram plots it)";
    fig.insertBefore(cap, fig.firstChild);
  }

  root.swarmCharts = {line: line, timelineCharts: timelineCharts, distributionChart: distributionChart};
})(window);
