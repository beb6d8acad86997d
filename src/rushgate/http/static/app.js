// rushgate: progressive enhancement only; every page works without this file.
"use strict";
(function () {
  // Ask before a form marked data-confirm is sent (drop a course, withdraw, ...).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
})();
