// The application form: refuse a too-large file before its upload starts (the server
// checks again; this only saves the applicant a long wait).
"use strict";
(function () {
  var form = document.getElementById("upload-form");
  var input = document.getElementById("f-file");
  var message = document.getElementById("f-file-error");
  if (!form || !input || !message) return;
  var max = Number(form.getAttribute("data-max-bytes"));
  function check() {
    var file = input.files && input.files[0];
    var tooLarge = Boolean(file && max && file.size > max);
    message.textContent = tooLarge ? message.getAttribute("data-too-large") : "";
    if (tooLarge) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    return !tooLarge;
  }
  input.addEventListener("change", check);
  form.addEventListener("submit", function (event) {
    if (!check()) {
      event.preventDefault();
      input.focus();
    }
  });
})();
