// Keyboard shortcuts and auto-advance for the review pages. Served as a file: the pages'
// Content-Security-Policy allows no inline script. Without this file every control still works
// with the mouse (pointwise forms then show a submit button).
"use strict";
(function () {
  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && el.type === "text"));
  }

  function groups(form) {
    return Array.prototype.slice.call(form.querySelectorAll("fieldset[data-criterion]"));
  }

  // Send a score form once every criterion has a score (a second send is suppressed).
  function maybeSubmit(form) {
    var all = groups(form);
    if (!all.length || all.some(function (g) { return !g.querySelector("input:checked"); })) return;
    if (form.dataset.sent) return;
    form.dataset.sent = "1";
    form.requestSubmit();
  }

  document.addEventListener("change", function (e) {
    var form = e.target.form;
    if (form && form.hasAttribute("data-autosubmit") && e.target.type === "radio") maybeSubmit(form);
  });

  document.addEventListener("submit", function (e) {
    // A double press would send the same label twice; the server ignores the repeat, but do not ask.
    if (e.target.dataset.busy) { e.preventDefault(); return; }
    e.target.dataset.busy = "1";
  });

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    var target = e.target;
    if (typing(target)) {
      if (e.key === "Escape") target.blur();
      return;
    }
    var key = e.key.toLowerCase();
    if (/^[0-9]$/.test(key)) {
      var form = document.querySelector("form[data-autosubmit]");
      if (!form) return;
      var all = groups(form);
      // The first criterion still without a score; when all have one (a change after the reveal),
      // the criterion that holds the focus, else the first.
      var group = all.filter(function (g) { return !g.querySelector("input:checked"); })[0] ||
        all.filter(function (g) { return g.contains(document.activeElement); })[0] || all[0];
      var input = group && group.querySelector('input[value="' + key + '"]');
      if (!input || input.disabled) return;
      e.preventDefault();
      if (!input.checked) {
        input.checked = true;
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }
      return;
    }
    if (key === "enter" && (target.tagName === "BUTTON" || target.tagName === "A")) return;
    var el = document.querySelector('[data-key="' + key + '"]');
    if (!el || el.disabled) return;
    e.preventDefault();
    if (el.tagName === "TEXTAREA") el.focus();
    else el.click();
  });
})();
