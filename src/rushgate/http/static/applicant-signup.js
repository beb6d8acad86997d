// Sign-up: solves the proof-of-work puzzle in the background while the applicant types,
// and puts the answer in the form's hidden "challenge" field. Without script the server
// answers with challenge_required and the form stays as it was typed.
"use strict";
(function () {
  var box = document.getElementById("challenge");
  var answer = document.getElementById("challenge-answer");
  var status = document.getElementById("challenge-status");
  var form = document.getElementById("signup-form");
  if (!box || !answer || !form || box.getAttribute("data-kind") !== "pow" || !window.rushgatePow) {
    return;
  }
  var params = JSON.parse(box.getAttribute("data-puzzle"));
  var submit = form.querySelector("button[type=submit]");
  var waiting = false;
  window.rushgatePow.solve(params).then(function (solved) {
    answer.value = solved;
    if (status) status.textContent = status.getAttribute("data-done") || "";
    if (waiting) form.submit();
  });
  form.addEventListener("submit", function (event) {
    if (!answer.value) {
      // Sent as soon as the puzzle is solved.
      event.preventDefault();
      waiting = true;
      if (submit) submit.disabled = true;
    }
  });
})();
