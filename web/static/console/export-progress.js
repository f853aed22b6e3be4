// While an export runs, refresh its state section in place (every 2 s) instead of reloading the page:
// a <meta http-equiv="refresh"> reload moves keyboard and screen-reader users back to the top every time
// (WCAG 2.2.1, axe's meta-refresh). The section's role="status" line announces the change; polling stops
// once the server renders the section without data-running (done or failed).
(function () {
  "use strict";
  var section = document.getElementById("export-state");
  if (!section || !section.hasAttribute("data-running") || !window.fetch || !window.DOMParser) { return; }
  function poll() {
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("export-state");
        if (!fresh) { return; }
        section.innerHTML = fresh.innerHTML;
        if (fresh.hasAttribute("data-running")) { window.setTimeout(poll, 2000); }
        else { section.removeAttribute("data-running"); }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 2000);
})();
