// The receipt: a print button (browsers print without it too: the page has print styles).
"use strict";
(function () {
  var button = document.getElementById("print-receipt");
  if (!button) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    window.print();
  });
})();
