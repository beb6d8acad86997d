// The catalog page: refresh the seats left every few seconds from the public JSON catalog,
// without reloading. The page shows the same numbers without this file.
"use strict";
(function () {
  var table = document.querySelector("table.catalog[data-term]");
  if (!table || !window.fetch) { return; }
  var term = table.getAttribute("data-term");
  var cells = {};
  var ids = [];
  Array.prototype.forEach.call(table.querySelectorAll("[data-seats]"), function (cell) {
    var id = cell.getAttribute("data-seats");
    cells[id] = cell;
    ids.push(id);
  });
  if (!ids.length) { return; }
  ids.sort();
  var last = ids[ids.length - 1];
  var EVERY_MS = 5000;

  function page(after) {
    var url = "/api/v1/terms/" + encodeURIComponent(term) + "/sections?limit=1000";
    if (after) { url += "&after=" + encodeURIComponent(after); }
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error("catalog " + r.status); }
      return r.json();
    });
  }

  function refresh(after) {
    return page(after).then(function (body) {
      body.sections.forEach(function (s) {
        var cell = cells[s.section_id];
        if (cell && cell.textContent !== String(s.seats_left)) {
          cell.textContent = String(s.seats_left);
        }
      });
      var end = body.sections.length ? body.sections[body.sections.length - 1].section_id : null;
      // Only as many pages as reach the last section shown here.
      if (body.next && end !== null && end < last) { return refresh(body.next); }
      return null;
    });
  }

  function tick() {
    refresh(null).then(function () {
      table.setAttribute("data-refreshed", String(Date.now()));
    }).catch(function () { /* keep the numbers shown; try again next time */ })
      .then(function () { window.setTimeout(tick, EVERY_MS); });
  }
  window.setTimeout(tick, EVERY_MS);
})();
