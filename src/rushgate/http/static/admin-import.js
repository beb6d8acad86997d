// rushgate admin imports: without this file the upload waits for its result.
"use strict";
(function () {
  var form = document.getElementById("import-form");
  if (form) {
    // Answer at once and show progress, instead of waiting for the whole import.
    form.addEventListener("submit", function () {
      var flag = document.getElementById("progressive");
      if (flag) { flag.value = "1"; }
    });
  }
  var job = document.getElementById("import-job");
  if (!job || job.getAttribute("data-state") !== "running") { return; }
  var bar = document.getElementById("import-progress");
  var status = document.getElementById("import-status");
  var url = job.getAttribute("data-progress");
  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (!p) { window.setTimeout(poll, 2000); return; }
        bar.max = p.total;
        bar.value = p.written;
        bar.textContent = p.written + " / " + p.total;
        if (p.state === "running") {
          status.textContent = p.written + " / " + p.total + " (" + p.batches_done + "/" + p.batches + ")";
          window.setTimeout(poll, 1000);
        } else {
          window.location.reload();  // the finished page has the result and its report
        }
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 500);
})();
