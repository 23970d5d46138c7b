// Live fragments ([data-live], polled by htmx): no requests while the tab is hidden, one
// at once when it is shown again, and a changed status read out to screen readers.
(function () {
  "use strict";

  function live(elt) {
    return elt && elt.closest && elt.closest("[data-live]");
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (document.visibilityState !== "visible" && live(event.detail.elt)) {
      event.preventDefault(); // paused: the next poll tries again
    }
  });

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible" || !window.htmx) return;
    document.querySelectorAll("[data-live]").forEach(function (elt) {
      window.htmx.trigger(elt, "live:refresh");
    });
  });

  // The fragment is replaced as a whole, so the words worth saying are kept aside
  // (data-announce) and said in a live region that stays on the page.
  var said = null;
  function statuses(root) {
    return Array.prototype.map.call(root.querySelectorAll("[data-announce]"), function (el) {
      return el.getAttribute("data-announce");
    });
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    var elt = live(event.detail.target);
    said = elt ? statuses(elt) : null;
  });
  document.addEventListener("htmx:afterSettle", function () {
    var region = document.getElementById("live-announcer");
    if (!region || said === null) return;
    var before = said;
    said = null;
    var now = statuses(document);
    var changed = now.filter(function (words) { return before.indexOf(words) === -1; });
    if (changed.length) region.textContent = changed.join(". ");
  });
})();
