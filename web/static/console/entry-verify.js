// Recompute an entry's leaf hash, SHA-256(0x00 || canonical body), with the browser's own WebCrypto.
(function () {
  "use strict";
  var button = document.getElementById("browser-verify");
  var body = document.getElementById("entry-body");
  var expected = document.getElementById("entry-hash");
  var out = document.getElementById("browser-verify-result");
  if (!button || !body || !expected || !out || !(window.crypto && window.crypto.subtle)) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var raw = atob(body.getAttribute("data-canonical") || "");
    var bytes = new Uint8Array(raw.length + 1);
    bytes[0] = 0;
    for (var i = 0; i < raw.length; i++) { bytes[i + 1] = raw.charCodeAt(i); }
    window.crypto.subtle.digest("SHA-256", bytes).then(function (digest) {
      var hex = Array.prototype.map.call(new Uint8Array(digest), function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
      var ok = hex === expected.textContent.trim();
      // The leaf hash is all the browser checks; an entry awaiting its checkpoint says so (pending, not failed).
      var pending = out.getAttribute("data-pending") === "1";
      out.textContent = !ok ? "Browser check FAILED: " + hex
        : pending ? "Browser check passed: the leaf hash matches; its checkpoint is pending."
        : "Browser check passed: the leaf hash matches.";
      out.className = "badge " + (ok ? "ok" : "bad");
    });
  });
})();
