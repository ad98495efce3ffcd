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

  // The adjudicator's form: picking an annotator's answer (or none: the merged answer) fills
  // the final answer with it, to correct from there.
  function fillField(box, value) {
    var none = value === undefined || value === null;
    var list = box.querySelector("ol.ranking");
    if (list) {
      if (!Array.isArray(value)) return;
      value.forEach(function (item) {
        var input = list.querySelector("input[type=hidden][value='" + CSS.escape(String(item)) + "']");
        if (input) list.appendChild(input.closest("li"));
      });
      return;
    }
    box.querySelectorAll("input, select, textarea").forEach(function (input) {
      if (input.type === "radio") {
        input.checked = !none && String(value) === input.value;
      } else if (input.type === "checkbox") {
        input.checked = Array.isArray(value) && value.map(String).indexOf(input.value) >= 0;
      } else if (input.type === "datetime-local") {
        input.value = none ? "" : String(value).slice(0, 16);
      } else {
        input.value = none ? "" : String(value);
      }
    });
  }
  document.addEventListener("change", function (event) {
    var radio = event.target;
    if (!radio.matches("[data-adjudication] input[name=pick]")) return;
    var values = JSON.parse(radio.dataset.answer || "{}");
    radio.form.querySelectorAll(".form-field[data-field]").forEach(function (box) {
      fillField(box, values[box.dataset.field]);
    });
  });

  // Buttons that need a second thought.
  document.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    var message = submitter && submitter.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });
})();
