// A box that scrolls sideways (a long hash in a narrow card, a wide table, a <pre>) must be reachable by
// keyboard, or a keyboard user cannot see its hidden part (WCAG 2.1.1; axe's scrollable-region-focusable).
// Boxes that scroll and hold nothing focusable get tabindex=0 (then arrow keys scroll them); checked on
// load and again when the window is resized (what overflows depends on the width).
(function () {
  "use strict";
  var FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";
  function scrolls(el) {
    var style = window.getComputedStyle(el);
    var x = (style.overflowX === "auto" || style.overflowX === "scroll") && el.scrollWidth > el.clientWidth;
    var y = (style.overflowY === "auto" || style.overflowY === "scroll") && el.scrollHeight > el.clientHeight;
    return x || y;
  }
  function mark() {
    var main = document.getElementById("main");
    if (!main) { return; }
    Array.prototype.forEach.call(main.querySelectorAll("*"), function (el) {
      if (el.hasAttribute("data-scroll-focus")) {
        if (!scrolls(el)) { el.removeAttribute("tabindex"); el.removeAttribute("data-scroll-focus"); }
      } else if (!el.hasAttribute("tabindex") && scrolls(el) && !el.querySelector(FOCUSABLE)) {
        el.setAttribute("tabindex", "0");
        el.setAttribute("data-scroll-focus", "");
      }
    });
  }
  var pending = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(pending);
    pending = window.setTimeout(mark, 150);
  });
  mark();
})();
