// The waiting room page: live position, people ahead and ETA over Server-Sent Events,
// falling back to polling the status; moves on to enrolling once admitted. Without this
// file the page has a refresh button showing the same numbers.
"use strict";
(function () {
  var box = document.getElementById("queue");
  if (!box) { return; }
  var term = box.getAttribute("data-term");
  var next = box.getAttribute("data-next");
  var base = "/api/v1/queue/" + encodeURIComponent(term);
  var words = {
    position: document.getElementById("queue-position"),
    ahead: document.getElementById("queue-ahead"),
    eta: document.getElementById("queue-eta"),
    progress: document.getElementById("queue-progress"),
    state: document.getElementById("queue-state")
  };
  var stateText = {};
  Array.prototype.forEach.call(document.querySelectorAll("[data-state-text]"), function (el) {
    stateText[el.getAttribute("data-state-text")] = el.textContent;
  });
  var secondsText = box.getAttribute("data-seconds") || "{n} s";
  var done = false;

  function show(s) {
    if (done) { return; }
    function set(el, value) {
      var text = value === null || value === undefined ? "\u2013" : String(value);
      if (el && el.textContent !== text) { el.textContent = text; }
    }
    set(words.position, s.position);
    set(words.ahead, s.ahead);
    set(words.eta, s.eta_seconds === null ? null : secondsText.replace("{n}", s.eta_seconds));
    if (stateText[s.state] && words.state) { words.state.textContent = stateText[s.state]; }
    if (words.progress) {
      var max = Math.max(s.ticket, 1);
      words.progress.max = max;
      var served = s.ahead === null ? 0 : Math.max(s.ticket - s.ahead, 0);  // null: pre-queue
      words.progress.value = s.state === "admitted" ? max : served;
    }
    box.setAttribute("data-state", s.state);
    if (s.state === "admitted") {
      done = true;
      window.location.assign(next);  // the page there fetches the admission token itself
    }
  }

  function poll(wait) {
    window.setTimeout(function () {
      fetch(base + "/status", { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) { throw new Error("status " + r.status); }
        return r.json();
      }).then(function (s) {
        show(s);
        if (!done) { poll((s.poll_after_seconds || 2) * 1000); }
      }).catch(function () { poll(5000); });
    }, wait);
  }

  if (box.getAttribute("data-state") === "admitted") {
    window.location.assign(next);  // admitted already: straight on to the cart
    return;
  }
  if (window.EventSource) {
    var stream = new EventSource(base + "/stream");
    var failures = 0;
    stream.addEventListener("status", function (event) {
      failures = 0;
      var status = JSON.parse(event.data);
      show(status);
      if (done || status.state === "closed") { stream.close(); }  // nothing more will come
    });
    stream.onerror = function () {
      failures += 1;
      if (failures >= 3 && !done) {  // the stream keeps failing: poll instead
        stream.close();
        poll(1000);
      }
    };
  } else {
    poll(1000);
  }
})();
