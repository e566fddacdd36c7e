// The console's own script: it keeps a live region's poll from replacing a
// form the person is using. A poll re-renders the whole region (a table
// with a form in each row), which would drop a typed quantity or cancel
// reason, and the message next to a refused value. While a form in the
// region has the focus in a field or holds typed input, or for errorHoldMs
// after it came to show such a message, the region keeps what it shows;
// the next poll after that updates it. A form's own answer (a POST) is
// always shown.
(function () {
  "use strict";

  // How long a refused value's message holds its region: long enough to
  // read it, not so long that the region stops showing what changed.
  var errorHoldMs = 15000;
  var errorSeen = new WeakMap(); // a message element -> when it was first seen

  function recentError(form) {
    var el = form.querySelector(".field-error");
    if (!el) {
      return false;
    }
    var now = Date.now();
    if (!errorSeen.has(el)) {
      errorSeen.set(el, now);
    }
    return now - errorSeen.get(el) < errorHoldMs;
  }

  function isField(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  }

  function edited(el) {
    if (el.type === "hidden" || el.type === "submit" || el.type === "button") {
      return false;
    }
    if (el.type === "checkbox" || el.type === "radio") {
      return el.checked !== el.defaultChecked;
    }
    return isField(el) && el.value !== el.defaultValue;
  }

  function inUse(region) {
    var forms = region.querySelectorAll("form");
    for (var i = 0; i < forms.length; i++) {
      var form = forms[i];
      if (isField(document.activeElement) && form.contains(document.activeElement)) {
        return true;
      }
      if (recentError(form)) {
        return true;
      }
      for (var j = 0; j < form.elements.length; j++) {
        if (edited(form.elements[j])) {
          return true;
        }
      }
    }
    return false;
  }

  document.addEventListener("htmx:beforeSwap", function (evt) {
    var elt = evt.detail.elt;
    var verb = evt.detail.requestConfig && evt.detail.requestConfig.verb;
    if (!elt || !elt.classList || !elt.classList.contains("live") || verb !== "get") {
      return; // not a poll
    }
    if (inUse(elt)) {
      evt.detail.shouldSwap = false;
    }
  });
})();
