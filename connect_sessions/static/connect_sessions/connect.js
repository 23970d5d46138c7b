/*
 * connect.js: open the connection portal's connect link in a popup and hear how it ended.
 * Served by the portal itself (<portal>/static/connect_sessions/connect.js); plain ES2017,
 * no build step, no dependency.
 *
 *   <script src="https://portal.example.com/static/connect_sessions/connect.js"></script>
 *   ConnectionPortal.open({
 *     connectLink: "https://portal.example.com/connect/cst_…",  // from POST /api/v1/connect-sessions
 *     onEvent: function (event) { … },                           // called once
 *     width: 520, height: 720,                                   // optional, CSS pixels
 *   });
 *
 * Create the session with "mode": "popup" and a return_url on this page's origin: the
 * portal posts its result to exactly that origin. onEvent receives one of
 *   {type: "connected", configVariableId: "…", outcome: "connected"}
 *   {type: "error",     configVariableId: "…", outcome: "error" | "denied"}
 *   {type: "closed"}   // the popup was closed before an outcome
 *   {type: "error",    outcome: "blocked"}   // the browser blocked the popup
 * open() returns {close()} to stop listening and close the popup. Call it from a click
 * handler, or browsers block the popup.
 *
 * Only messages whose origin is the portal's (the connect link's origin) and whose
 * source is this popup are read; anything else is ignored.
 */
(function (global) {
  "use strict";

  var SOURCE = "connection-portal";
  var CLOSED_POLL_MS = 500;

  function centred(width, height) {
    var outer = global.top || global;
    var left = (outer.screenX || 0) + Math.max(0, ((outer.outerWidth || width) - width) / 2);
    var top = (outer.screenY || 0) + Math.max(0, ((outer.outerHeight || height) - height) / 2);
    return "popup=yes,width=" + width + ",height=" + height +
      ",left=" + Math.round(left) + ",top=" + Math.round(top);
  }

  function open(options) {
    if (!options || !options.connectLink) throw new Error("ConnectionPortal.open: connectLink is required");
    var onEvent = typeof options.onEvent === "function" ? options.onEvent : function () {};
    var portalOrigin = new URL(options.connectLink).origin;
    var width = options.width || 520;
    var height = options.height || 720;
    var finished = false;
    var timer = null;
    var popup = global.open(options.connectLink, "connection-portal", centred(width, height));

    function finish(event) {
      if (finished) return;
      finished = true;
      global.removeEventListener("message", onMessage);
      if (timer !== null) global.clearInterval(timer);
      onEvent(event);
    }

    function onMessage(message) {
      if (message.origin !== portalOrigin || message.source !== popup) return;
      var data = message.data;
      if (!data || data.source !== SOURCE) return;
      var type = data.event === "connected" ? "connected" : "error";
      finish({ type: type, configVariableId: data.config_variable_id, outcome: data.outcome });
    }

    if (!popup) {
      finish({ type: "error", outcome: "blocked" });
      return { close: function () {} };
    }
    global.addEventListener("message", onMessage);
    // A closed popup sends no event: watch for it, and report "closed" unless a result
    // arrived first (the message is queued before the popup closes itself).
    timer = global.setInterval(function () {
      if (popup.closed) {
        global.setTimeout(function () { finish({ type: "closed" }); }, CLOSED_POLL_MS);
        global.clearInterval(timer);
        timer = null;
      }
    }, CLOSED_POLL_MS);
    if (popup.focus) popup.focus();

    return {
      close: function () {
        finish({ type: "closed" });
        if (!popup.closed) popup.close();
      },
    };
  }

  global.ConnectionPortal = { open: open };
})(window);
