// Conveyor web app: a little progressive enhancement; every page works without it.
(function () {
  "use strict";

  // Ranking fields: move items up and down; hidden inputs follow the visible order.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-move]");
    if (!button) return;
    event.preventDefault();
    var item = button.closest("li");
    var list = item.parentElement;
    if (button.dataset.move === "up" && item.previousElementSibling) {
      list.insertBefore(item, item.previousElementSibling);
    } else if (button.dataset.move === "down" && item.nextElementSibling) {
      list.insertBefore(item.nextElementSibling, item);
    }
  });

  // Select-all checkbox of the explorer's table, and the selection count.
  function updateSelection(form) {
    var boxes = form.querySelectorAll("input[name=ids]");
    var chosen = Array.prototype.filter.call(boxes, function (b) { return b.checked; }).length;
    var counter = form.querySelector("[data-selected]");
    if (counter) counter.textContent = chosen ? chosen + " selected" : "none selected";
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    var form = target.form;
    if (!form) return;
    if (target.matches("[data-select-all]")) {
      form.querySelectorAll("input[name=ids]").forEach(function (b) { b.checked = target.checked; });
    }
    if (target.matches("[data-select-all], input[name=ids]")) updateSelection(form);
  });

  // Buttons that need a second thought.
  document.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    var message = submitter && submitter.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });
})();
