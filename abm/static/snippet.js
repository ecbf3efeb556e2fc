/* ABM first-party site snippet: page visits, known visitors from tracked links, form fills.
   No third-party requests; data goes only to the server that served this file. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var endpoint = new URL("/t/v", script.src).href;
  var site = script.getAttribute("data-site");
  if (!site) return;
  var store = window.localStorage;
  function get(k) { try { return store.getItem(k); } catch (e) { return null; } }
  function set(k, v) { try { store.setItem(k, v); } catch (e) { /* private mode */ } }
  var visitor = get("abm_vid");
  if (!visitor) {
    visitor = (Date.now().toString(36) + Math.random().toString(36).slice(2, 10));
    set("abm_vid", visitor);
  }
  var params = new URLSearchParams(window.location.search);
  var contact = params.get("abm_c");
  if (contact) { set("abm_c", contact); } else { contact = get("abm_c"); }
  function send(body) {
    body.site = site;
    body.visitor_id = visitor;
    if (contact) body.contact = contact;
    body.url = window.location.href.replace(/([?&])abm_c=[^&#]*&?/, "$1").replace(/[?&]$/, "");
    var data = JSON.stringify(body);
    if (navigator.sendBeacon && navigator.sendBeacon(endpoint, new Blob([data], {type: "text/plain"}))) return;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", endpoint, true);
    xhr.setRequestHeader("Content-Type", "text/plain");
    xhr.send(data);
  }
  send({type: "web_visit", title: document.title, referrer: document.referrer || null});
  document.addEventListener("submit", function (ev) {
    var form = ev.target, email = null;
    if (!form || !form.elements) return;
    for (var i = 0; i < form.elements.length; i++) {
      var el = form.elements[i];
      if (el.type === "password") continue;
      if ((el.type === "email" || /e-?mail/i.test(el.name || "")) && /@/.test(el.value || "")) { email = el.value; break; }
    }
    send({type: "form_fill", email: email, form: form.getAttribute("id") || form.getAttribute("name") || null});
  }, true);
})();
