// The operation timeline: draws only the operations inside the current window of time on a
// canvas, so a history of any length stays responsive. Every text shown comes from the
// embedded JSON and is set with textContent, never parsed as HTML.
(function () {
  "use strict";
  var holder = document.getElementById("timeline-data");
  var root = document.getElementById("timeline");
  if (!holder || !root) return;
  var D = JSON.parse(holder.textContent);
  var n = D.s.length;
  // Decode the compact columns: starts and indices are differences from the previous entry,
  // times are in thousandths of the unit.
  (function () {
    var s = new Float64Array(n), d = new Float64Array(n), i = new Float64Array(n);
    var start = 0, index = 0;
    for (var k = 0; k < n; k++) {
      start += D.s[k]; index += D.i[k];
      s[k] = start / 1000; i[k] = index; d[k] = D.d[k] < 0 ? -1 : D.d[k] / 1000;
    }
    D.s = s; D.d = d; D.i = i;
  })();
  var COLORS = ["#1f77b4", "#d62728", "#f08c00", "#f08c00"];
  var OUTCOMES = ["ok", "fail", "info", "open"];
  var canvas = document.getElementById("timeline-canvas");
  var overview = document.getElementById("timeline-overview");
  var slider = document.getElementById("timeline-slider");
  var status = document.getElementById("timeline-status");
  var tip = document.getElementById("timeline-tip");
  var ctx = canvas.getContext("2d");
  var octx = overview.getContext("2d");
  var lanes = Math.max(1, D.lanes.length);
  var laneH = Math.max(6, Math.min(20, Math.floor(640 / lanes)));
  var TOP = 18, LEFT = 78, AXIS = 22;
  var end = Math.max(D.end, 1e-9);
  // The longest completed operation bounds how far before the window an operation may start
  // and still be visible; never-completed ones are drawn to the end and kept apart.
  var maxDur = 0, open = [];
  for (var k = 0; k < n; k++) {
    if (D.d[k] < 0) open.push(k); else if (D.d[k] > maxDur) maxDur = D.d[k];
  }
  var marked = {};
  D.marks.forEach(function (m) { marked[m.index] = m.label; });
  var span = n <= 3000 ? end : Math.max(end * 3000 / n, 1e-6);
  var t0 = 0, highlight = -1, drawn = [];

  function lowerBound(t) {
    var lo = 0, hi = n;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (D.s[mid] < t) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function fmt(t) {
    if (D.unit === "event") return "event " + Math.round(t);
    return t >= 1000 ? (t / 1000).toFixed(3) + " s" : t.toFixed(3) + " ms";
  }
  function clamp() {
    span = Math.min(Math.max(span, 1e-6), end);
    t0 = Math.min(Math.max(t0, 0), Math.max(0, end - span));
  }
  function size() {
    var w = Math.max(300, root.clientWidth - 18);
    var h = TOP + lanes * laneH + AXIS;
    var r = window.devicePixelRatio || 1;
    canvas.width = w * r; canvas.height = h * r; canvas.style.height = h + "px";
    ctx.setTransform(r, 0, 0, r, 0, 0);
    overview.width = w * r; overview.height = 26 * r; overview.style.height = "26px";
    octx.setTransform(r, 0, 0, r, 0, 0);
    return w;
  }
  var W = size();
  function X(t) { return LEFT + (t - t0) / span * (W - LEFT - 8); }

  function drawOverview() {
    var w = W;
    octx.clearRect(0, 0, w, 26);
    octx.fillStyle = "#f1f3f5"; octx.fillRect(0, 0, w, 26);
    var ox = function (t) { return t / end * w; };
    D.faults.forEach(function (f) {
      octx.fillStyle = f.color; octx.globalAlpha = 0.35;
      octx.fillRect(ox(f.start), 0, Math.max(1, ox(f.end === null ? end : f.end) - ox(f.start)), 26);
    });
    octx.globalAlpha = 1;
    // Failures and unknowns across the whole history, as ticks.
    var step = Math.max(1, Math.floor(n / 20000));
    for (var k = 0; k < n; k += step) {
      if (D.o[k] === 1 || D.o[k] === 2) {
        octx.fillStyle = COLORS[D.o[k]]; octx.fillRect(ox(D.s[k]), 16, 1, 10);
      }
    }
    octx.fillStyle = "#000";
    D.marks.forEach(function (m) {
      var k = positionOf(m.index);
      if (k >= 0) { octx.fillRect(ox(D.s[k]) - 1, 0, 3, 26); }
    });
    octx.strokeStyle = "#212529"; octx.lineWidth = 2;
    octx.strokeRect(ox(t0), 1, Math.max(3, ox(t0 + span) - ox(t0)), 24);
  }

  var positions = null;
  function positionOf(index) {
    if (positions === null) {
      positions = {};
      for (var k = 0; k < n; k++) positions[D.i[k]] = k;
    }
    var k = positions[index];
    return k === undefined ? -1 : k;
  }

  function draw() {
    clamp();
    W = canvas.clientWidth || W;
    var h = TOP + lanes * laneH + AXIS;
    ctx.clearRect(0, 0, W, h);
    var t1 = t0 + span;
    for (var l = 0; l < lanes; l++) {
      if (l % 2) { ctx.fillStyle = "#f8f9fa"; ctx.fillRect(LEFT, TOP + l * laneH, W - LEFT, laneH); }
    }
    // Fault bands with their labels.
    ctx.font = "11px sans-serif";
    D.faults.forEach(function (f, j) {
      var fe = f.end === null ? end : f.end;
      if (fe < t0 || f.start > t1) return;
      var x0 = Math.max(LEFT, X(f.start)), x1 = Math.min(W, X(fe));
      ctx.globalAlpha = 0.18; ctx.fillStyle = f.color;
      ctx.fillRect(x0, 0, Math.max(1, x1 - x0), TOP + lanes * laneH);
      ctx.globalAlpha = 1; ctx.fillStyle = f.color;
      ctx.fillText(f.label, x0 + 2, 11 + (j % 2) * 0);
    });
    // Operations in the window.
    drawn = [];
    var from = lowerBound(t0 - maxDur), to = lowerBound(t1);
    var count = 0;
    var draw1 = function (k) {
      var s = D.s[k], e = D.d[k] < 0 ? end : s + D.d[k];
      if (e < t0 || s > t1) return;
      var x0 = Math.max(LEFT, X(s)), x1 = Math.min(W, X(e));
      var y = TOP + D.lane[k] * laneH + 1;
      ctx.fillStyle = COLORS[D.o[k]];
      ctx.fillRect(x0, y, Math.max(1, x1 - x0), laneH - 2);
      if (marked[D.i[k]] !== undefined || k === highlight) {
        ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
        ctx.strokeRect(x0 - 1, y - 1, Math.max(3, x1 - x0 + 2), laneH);
      }
      if (x1 - x0 > 46 && laneH >= 12) {
        ctx.fillStyle = "#fff";
        ctx.fillText(D.fs[D.f[k]], x0 + 3, y + laneH - 5);
      }
      drawn.push(k);
      count++;
    };
    for (var k = from; k < to; k++) if (D.d[k] >= 0) draw1(k);
    open.forEach(function (k) { if (D.s[k] < t1) draw1(k); });
    // Lane labels and the time axis.
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, LEFT - 2, h);
    ctx.fillStyle = "#495057";
    for (var l2 = 0; l2 < lanes; l2++) {
      if (laneH >= 9 || l2 % Math.ceil(9 / laneH) === 0) {
        ctx.fillText(D.lanes[l2], 2, TOP + l2 * laneH + Math.min(laneH, 12));
      }
    }
    var ticks = 8;
    ctx.fillStyle = "#495057";
    for (var i = 0; i <= ticks; i++) {
      var t = t0 + span * i / ticks, x = X(t);
      ctx.fillRect(x, TOP + lanes * laneH, 1, 4);
      ctx.fillText(fmt(t), Math.min(x, W - 70), TOP + lanes * laneH + 16);
    }
    slider.value = end > span ? Math.round(t0 / (end - span) * 1000) : 0;
    status.textContent = count.toLocaleString() + " of " + D.total.toLocaleString() +
      " operations in this window, " + fmt(t0) + " to " + fmt(t1) +
      (D.shown < D.total ? " (the timeline holds the first " + D.shown.toLocaleString() +
        " operations; history.jsonl has all)" : "");
    drawOverview();
  }

  function zoom(factor) { var c = t0 + span / 2; span *= factor; t0 = c - span / 2; draw(); }
  function pan(fraction) { t0 += span * fraction; draw(); }
  function show(k) {
    highlight = k;
    var len = D.d[k] < 0 ? span : Math.max(D.d[k], 1e-3);
    span = Math.min(end, Math.max(len * 12, D.unit === "event" ? 40 : 5));
    t0 = D.s[k] - span / 3;
    draw();
  }
  document.getElementById("tl-zoom-in").onclick = function () { zoom(0.5); };
  document.getElementById("tl-zoom-out").onclick = function () { zoom(2); };
  document.getElementById("tl-all").onclick = function () { span = end; t0 = 0; draw(); };
  document.getElementById("tl-left").onclick = function () { pan(-0.8); };
  document.getElementById("tl-right").onclick = function () { pan(0.8); };
  slider.oninput = function () { t0 = (end - span) * slider.value / 1000; draw(); };
  overview.onclick = function (ev) {
    var r = overview.getBoundingClientRect();
    t0 = (ev.clientX - r.left) / r.width * end - span / 2; draw();
  };
  var dragging = null;
  canvas.onmousedown = function (ev) { dragging = { x: ev.clientX, t0: t0 }; canvas.style.cursor = "grabbing"; };
  window.addEventListener("mouseup", function () { dragging = null; canvas.style.cursor = "grab"; });
  canvas.onmousemove = function (ev) {
    var r = canvas.getBoundingClientRect();
    if (dragging) {
      t0 = dragging.t0 - (ev.clientX - dragging.x) / (W - LEFT - 8) * span; draw(); return;
    }
    var mx = ev.clientX - r.left, my = ev.clientY - r.top;
    var lane = Math.floor((my - TOP) / laneH), hit = -1;
    for (var j = 0; j < drawn.length; j++) {
      var k = drawn[j];
      if (D.lane[k] !== lane) continue;
      var s = D.s[k], e = D.d[k] < 0 ? end : s + D.d[k];
      if (X(s) - 2 <= mx && mx <= X(e) + 2) { hit = k; break; }
    }
    if (hit < 0) { tip.style.display = "none"; return; }
    var lines = [
      "index " + D.i[hit] + "  process " + D.p[hit],
      D.fs[D.f[hit]] + " " + D.texts[D.t[hit]],
      OUTCOMES[D.o[hit]] + (D.e[hit] >= 0 ? ": " + D.texts[D.e[hit]] : ""),
      "invoked " + fmt(D.s[hit]) + (D.d[hit] >= 0 ? ", took " +
        (D.unit === "event" ? D.d[hit] + " events" : D.d[hit].toFixed(3) + " ms") : ", never completed")
    ];
    if (marked[D.i[hit]] !== undefined) lines.push("anomaly: " + marked[D.i[hit]]);
    tip.textContent = lines.join("\n");
    tip.style.display = "block";
    tip.style.left = Math.min(mx + 14, W - 260) + "px";
    tip.style.top = (my + canvas.offsetTop + 14) + "px";
  };
  canvas.onmouseleave = function () { tip.style.display = "none"; };
  var marks = document.getElementById("timeline-marks");
  // A button for each of the first anomalies; every anomaly is outlined in the drawing.
  D.marks.slice(0, 12).forEach(function (m) {
    var k = positionOf(m.index);
    if (k < 0) return;
    var b = document.createElement("button");
    b.textContent = "go to " + m.label + " (index " + m.index + ")";
    b.onclick = function () { show(k); };
    marks.appendChild(b);
  });
  window.addEventListener("resize", function () { W = size(); draw(); });
  // `#op-INDEX` (the anomalies' links) shows that operation.
  function fromHash() {
    var m = /^#op-(\d+)$/.exec(window.location.hash);
    if (!m) return false;
    var k = positionOf(Number(m[1]));
    if (k < 0) return false;
    show(k);
    root.scrollIntoView();
    return true;
  }
  window.addEventListener("hashchange", fromHash);
  if (!fromHash()) draw();
  root.setAttribute("data-ready", "true");
})();
