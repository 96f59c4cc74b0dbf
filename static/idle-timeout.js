// Idle sign-out warning. The server signs a session out after SESSION_IDLE_TIMEOUT seconds
// without a request (accounts.middleware.IdleTimeoutMiddleware); this warns two minutes
// before, offers "Stay signed in", and reloads the page when the time is up so the server's
// sign-out (and its message) is what the user sees. It asks the server how much time is left
// before acting, so activity in another tab is respected. External file: the CSP forbids
// inline scripts.
(function () {
  "use strict";
  var body = document.body;
  var timeout = parseInt(body.getAttribute("data-idle-timeout"), 10);
  var statusUrl = body.getAttribute("data-session-status-url");
  var keepaliveUrl = body.getAttribute("data-session-keepalive-url");
  if (!timeout || !statusUrl) { return; }
  var WARN_BEFORE = 120;
  var banner = document.getElementById("idle-warning");
  var text = document.getElementById("idle-warning-text");
  var stay = document.getElementById("idle-stay");
  var timer = null;
  var countdown = null;

  function schedule(remaining) {
    clearTimeout(timer);
    if (remaining <= 0) { window.location.assign(window.location.href); return; }
    var wait = remaining - WARN_BEFORE;
    if (wait > 0) {
      hide();
      timer = setTimeout(check, wait * 1000);
    } else {
      show(remaining);
      timer = setTimeout(check, remaining * 1000 + 1000);
    }
  }

  function show(remaining) {
    if (!banner) { return; }
    banner.hidden = false;
    var end = Date.now() + remaining * 1000;
    clearInterval(countdown);
    function tick() {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      var m = Math.floor(left / 60), s = left % 60;
      text.textContent = "You will be signed out in " + m + ":" + (s < 10 ? "0" : "") + s +
        " because of inactivity.";
    }
    tick();
    countdown = setInterval(tick, 1000);
  }

  function hide() {
    clearInterval(countdown);
    if (banner) { banner.hidden = true; }
  }

  function handle(response) {
    if (!response.ok) { window.location.assign(window.location.href); return null; }
    return response.json().then(function (state) {
      if (!state.authenticated) { window.location.assign(window.location.href); return; }
      schedule(state.remaining);
    });
  }

  function check() {
    fetch(statusUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(handle)
      .catch(function () { timer = setTimeout(check, 30000); });
  }

  function csrfToken() {
    var field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  if (stay) {
    stay.addEventListener("click", function () {
      fetch(keepaliveUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" }
      }).then(handle);
    });
  }

  schedule(timeout);
})();
