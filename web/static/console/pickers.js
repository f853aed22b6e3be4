// Checkbox pickers (templates/console/partials/picker.html): show each one's filter box and hide the
// choices that do not contain what is typed. Ticked choices always stay visible, so none is sent unseen.
(function () {
  "use strict";
  var pickers = document.querySelectorAll("fieldset.picker");
  Array.prototype.forEach.call(pickers, function (picker) {
    var box = picker.querySelector(".picker-filter");
    var input = box && box.querySelector("input");
    if (!input) { return; }
    box.hidden = false;
    input.addEventListener("input", function () {
      var needle = input.value.trim().toLowerCase();
      Array.prototype.forEach.call(picker.querySelectorAll(".picker-list label"), function (label) {
        var check = label.querySelector("input");
        var match = !needle || label.textContent.toLowerCase().indexOf(needle) !== -1;
        label.hidden = !(match || (check && check.checked));
      });
    });
  });
})();
