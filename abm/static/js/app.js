// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  // abm.api(path, options): fetch() for the pages' own calls to /api/v1 with the session.
  // Writes carry the page's CSRF token in X-CSRFToken (the API refuses a session write
  // without it) and a JSON body is sent as application/json (the only type it reads).
  window.abm = window.abm || {};
  window.abm.api = function (path, options) {
    options = Object.assign({credentials: "same-origin"}, options || {});
    var headers = new Headers(options.headers || {});
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) headers.set("X-CSRFToken", meta.getAttribute("content"));
    if (options.json !== undefined) {
      headers.set("Content-Type", "application/json");
      options.body = JSON.stringify(options.json);
      delete options.json;
    }
    options.headers = headers;
    return fetch(path.indexOf("/") === 0 ? path : "/api/v1/" + path, options);
  };
  // <button data-confirm="Revoke this token?"> asks before submitting its form.
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var message = (button && button.getAttribute("data-confirm")) || event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });
  // <button data-copy="#token"> copies the text of the element it names.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });
  // Filter forms with data-autosubmit submit when a select changes.
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
    select.addEventListener("change", function () { select.form.requestSubmit ? select.form.requestSubmit() : select.form.submit(); });
  });
})();
// <section data-poll="/imports/7/status"> follows a running import: progress until it ends, then the report.
(function () {
  "use strict";
  var box = document.querySelector("[data-poll]");
  if (!box || !window.fetch) return;
  var url = box.getAttribute("data-poll");
  function poll() {
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"}).then(function (resp) {
      return resp.ok ? resp.json() : null;
    }).then(function (run) {
      if (!run) return setTimeout(poll, 5000);
      if (run.status === "done" || run.status === "failed") return window.location.reload();
      var bar = box.querySelector("progress");
      var text = box.querySelector("[data-poll-text]");
      var pct = Math.round(run.progress * 100);
      if (bar) bar.value = run.progress;
      if (text) text.textContent = pct + "% of " + run.bytes_total + " bytes read";
      setTimeout(poll, 1000);
    }).catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1000);
})();
