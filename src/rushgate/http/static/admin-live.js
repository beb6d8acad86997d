// rushgate live rush dashboard: polls the page's JSON and draws small line charts.
// Without this file the page shows the numbers as of loading it.
"use strict";
(function () {
  var root = document.getElementById("live");
  if (!root) { return; }
  var source = root.getAttribute("data-source");
  var every = parseInt(root.getAttribute("data-every"), 10) || 1500;
  var keep = 60;  // points per chart: the last minute and a half
  var history = {};
  var hint = document.querySelector(".no-js-hint");
  if (hint) { hint.hidden = true; }

  function show(key, text) {
    var el = root.querySelector('[data-live="' + key + '"]');
    if (el && el.textContent !== text) { el.textContent = text; }
  }

  function plot(key, value) {
    var svg = root.querySelector('[data-chart="' + key + '"]');
    if (!svg || value === null || value === undefined) { return; }
    var points = history[key] = (history[key] || []).concat([value]).slice(-keep);
    var max = Math.max.apply(null, points.concat([1e-9]));
    var step = 120 / (keep - 1);
    var start = keep - points.length;
    var coords = points.map(function (v, i) {
      var x = (start + i) * step;
      var y = 38 - (v / max) * 36;
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    svg.querySelector("polyline").setAttribute("points", coords.join(" "));
  }

  function cell(tag, text) {
    var el = document.createElement(tag);
    el.textContent = text;
    if (tag === "th") { el.setAttribute("scope", "row"); }
    return el;
  }

  function hottest(rows) {
    var body = document.getElementById("hottest");
    if (!body) { return; }
    var fresh = document.createDocumentFragment();
    rows.forEach(function (s) {
      var tr = document.createElement("tr");
      tr.appendChild(cell("th", s.section_id + " " + s.title));
      tr.appendChild(cell("td", s.enrolled + " / " + s.capacity));
      tr.appendChild(cell("td", String(s.seats_left)));
      fresh.appendChild(tr);
    });
    body.replaceChildren(fresh);
  }

  var state = document.getElementById("live-state");
  var paused = document.getElementById("live-paused");

  function update(n) {
    // Announced (aria-live) only when it changes: the room opens, closes, is paused.
    show("phase", state.getAttribute("data-" + n.phase) || n.phase);
    if (paused.hidden === n.paused) { paused.hidden = !n.paused; }
    show("waiting", String(n.waiting));
    show("admits_per_second", String(n.admits_per_second));
    show("active", String(n.active));
    show("seats_left", String(n.seats_left));
    show("error_rate", (n.error_rate * 100).toFixed(2) + "%");
    show("p99", n.p99_seconds === null ? "–" : Math.round(n.p99_seconds * 1000) + " ms");
    plot("waiting", n.waiting);
    plot("admits_per_second", n.admits_per_second);
    plot("seats_left", n.seats_left);
    plot("error_rate", n.error_rate);
    plot("p99", n.p99_seconds === null ? 0 : n.p99_seconds);
    hottest(n.hottest);
    root.setAttribute("data-updated", String(Date.now()));
  }

  function poll() {
    fetch(source, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (n) { if (n) { update(n); } })
      .catch(function () { /* a missed poll: the next one catches up */ })
      .then(function () { window.setTimeout(poll, document.hidden ? every * 4 : every); });
  }
  poll();
})();
