// The live worklist: a WebSocket brings "case N changed" (ids only); the page asks the server
// for that row as this user may see it and puts it in place (or removes it on 404). After a
// gap (reconnect) it re-fetches the whole table. No framework, no build step.
(function () {
  "use strict";
  var root = document.getElementById("worklist");
  if (!root) return;
  var rows = document.getElementById("worklist-rows");
  var view = root.dataset.view;
  var filters = root.dataset.filters;
  var csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  var status = document.getElementById("live-status");
  var message = document.getElementById("worklist-message");
  var banner = document.getElementById("stat-banner");
  var sound = document.getElementById("stat-sound");
  var muteButton = document.getElementById("mute");
  var muted = localStorage.getItem("worklist-muted") === "1";
  var connectedOnce = false;
  var backoff = 500;
  var socket = null;

  function query() {
    return "?view=" + encodeURIComponent(view) + (filters ? "&" + filters : "");
  }
  function rowUrl(id) {
    return root.dataset.rowUrl.replace(/\/0\/$/, "/" + id + "/") + query();
  }
  function say(text, bad) {
    message.textContent = text;
    message.className = "worklist-message" + (bad ? " bad" : "");
  }
  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  // --- rows ---------------------------------------------------------------------------------
  function sortKey(tr) {
    return tr.dataset.sort.split(".").map(Number);
  }
  function before(a, b) {
    var x = sortKey(a), y = sortKey(b);
    for (var i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] < y[i];
    return false;
  }
  function place(tr) {
    var old = document.getElementById(tr.id);
    if (old) old.remove();
    var next = null;
    for (var i = 0; i < rows.children.length; i++) {
      if (before(tr, rows.children[i])) { next = rows.children[i]; break; }
    }
    rows.insertBefore(tr, next);
    tick();
  }
  function parseRow(html) {
    var t = document.createElement("template");
    t.innerHTML = "<table><tbody>" + html.trim() + "</tbody></table>";
    return t.content.querySelector("tr");
  }
  function refreshRow(id, event) {
    return fetch(rowUrl(id), { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) {
        if (r.status === 404) {
          var old = document.getElementById("case-" + id);
          if (old) old.remove();
          return;
        }
        if (!r.ok) throw new Error("row " + id + ": " + r.status);
        return r.text().then(function (html) {
          var tr = parseRow(html);
          if (!tr) return;
          var isNew = !document.getElementById(tr.id);
          place(tr);
          if (isNew && event === "case.created" && tr.dataset.priority === "stat") stat(tr);
        });
      })
      .catch(function (e) { console.warn(e); });
  }
  function resync() {
    return fetch(root.dataset.tableUrl + query(), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("table " + r.status); return r.text(); })
      .then(function (html) {
        var t = document.createElement("template");
        t.innerHTML = "<table>" + html.trim() + "</table>";
        var fresh = t.content.querySelector("tbody");
        rows.replaceChildren.apply(rows, Array.prototype.slice.call(fresh.children));
        tick();
        refreshLoad();
      })
      .catch(function (e) { console.warn(e); });
  }
  function refreshLoad() {
    var box = document.getElementById("reader-load");
    if (!box) return;
    fetch(root.dataset.loadUrl, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) box.innerHTML = html; });
  }

  // --- STAT: banner, sound (mutable), desktop notification -----------------------------------
  function stat(tr) {
    var patient = tr.querySelector(".patient");
    document.getElementById("stat-banner-text").textContent =
      (patient ? patient.textContent.trim() + " — " : "") + "a STAT case arrived.";
    banner.hidden = false;
    if (!muted && sound) {
      sound.currentTime = 0;
      var p = sound.play();
      if (p && p.catch) p.catch(function () {});
    }
    if (window.Notification && Notification.permission === "granted") {
      new Notification("STAT case on your worklist", { body: "Open ReadingRoom to read it.", tag: tr.id });
    }
  }
  document.getElementById("stat-dismiss").addEventListener("click", function () { banner.hidden = true; });
  function showMute() {
    muteButton.setAttribute("aria-pressed", muted ? "true" : "false");
    muteButton.textContent = muted ? "Unmute STAT sound" : "Mute STAT sound";
  }
  muteButton.addEventListener("click", function () {
    muted = !muted;
    localStorage.setItem("worklist-muted", muted ? "1" : "0");
    showMute();
  });
  showMute();
  var permission = document.getElementById("notify-permission");
  if (!window.Notification || Notification.permission !== "default") permission.hidden = true;
  permission.addEventListener("click", function () {
    Notification.requestPermission().then(function () { permission.hidden = true; });
  });

  // --- SLA countdown: red and counting up when overdue ---------------------------------------
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return (h ? h + ":" + pad(m) : m) + ":" + pad(s);
  }
  function tick() {
    var now = Date.now() / 1000;
    var cells = rows.querySelectorAll("td.time-left");
    for (var i = 0; i < cells.length; i++) {
      var left = Math.round(Number(cells[i].dataset.due) - now);
      var overdue = left < 0;
      cells[i].textContent = overdue ? "+" + clock(-left) + " overdue" : clock(left);
      cells[i].classList.toggle("overdue", overdue);
      cells[i].parentNode.classList.toggle("overdue", overdue);
    }
  }
  setInterval(tick, 1000);
  tick();

  // --- actions ------------------------------------------------------------------------------
  function post(url, fields) {
    var body = new URLSearchParams(fields || {});
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Content-Type": "application/x-www-form-urlencoded" },
      body: body,
    }).then(function (r) {
      return r.json().catch(function () { return { error: "HTTP " + r.status }; })
        .then(function (data) { data.httpStatus = r.status; return data; });
    });
  }
  root.addEventListener("click", function (e) {
    var button = e.target.closest("button[data-action]");
    if (!button) return;
    var action = button.dataset.action;
    var tr = button.closest("tr");
    if (action === "lock") {
      post(button.dataset.url).then(function (d) {
        if (d.ok) {
          say("You hold the lock on this case.");
          if (tr && tr.dataset.reportUrl) window.location.assign(tr.dataset.reportUrl);
        } else say(d.error || "Could not lock the case.", true);
        if (tr) refreshRow(tr.dataset.caseId);
      });
    } else if (action === "unlock") {
      post(button.dataset.url).then(function (d) { say(d.ok ? "Lock released." : d.error, !d.ok); });
    } else if (action === "break-lock") {
      if (!window.confirm("Break " + button.dataset.holder + "'s lock on this case?")) return;
      post(button.dataset.url, { confirm: "yes" }).then(function (d) {
        say(d.ok ? "Lock of " + d.holder + " broken." : d.error, !d.ok);
      });
    } else if (action === "readers") {
      var box = document.getElementById("reader-choice");
      fetch(button.dataset.url, { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) { box.innerHTML = html; box.hidden = false; });
    } else if (action === "assign") {
      post(button.dataset.url, { reader: button.dataset.reader }).then(function (d) {
        say(d.ok ? "Assigned to " + d.assignee + "." : d.error, !d.ok);
        if (d.ok) document.getElementById("reader-choice").hidden = true;
      });
    }
  });
  var next = document.getElementById("next-case");
  if (next) next.addEventListener("click", function () {
    post(root.dataset.nextUrl).then(function (d) {
      if (d.ok) refreshRow(d.case_id).then(function () {
        var row = document.getElementById("case-" + d.case_id);
        say("Case " + d.case_id + " is yours and locked.");
        if (row && row.dataset.reportUrl) window.location.assign(row.dataset.reportUrl);
      });
      else say(d.error, true);
    });
  });
  var bulk = document.getElementById("bulk-assign");
  if (bulk) bulk.addEventListener("click", function () {
    var reader = document.getElementById("bulk-reader").value;
    var picked = Array.prototype.map.call(rows.querySelectorAll(".select-case:checked"), function (c) { return c.value; });
    var body = new URLSearchParams();
    picked.forEach(function (id) { body.append("case", id); });
    body.append("reader", reader);
    post(root.dataset.bulkUrl, body).then(function (d) {
      if (!d.results) return say(d.error, true);
      var refused = Object.keys(d.results).filter(function (k) { return d.results[k] !== "ok"; });
      say(refused.length ? refused.map(function (k) { return "case " + k + ": " + d.results[k]; }).join(" ") : "Assigned.", refused.length > 0);
    });
  });

  // --- the socket: reconnect with back-off, resynchronise after a gap ------------------------
  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + root.dataset.wsPath);
    socket.onopen = function () {
      setStatus("live", "live");
      backoff = 500;
      if (connectedOnce) resync();
      connectedOnce = true;
    };
    socket.onmessage = function (m) {
      var data = JSON.parse(m.data);
      if (data.event === "resync") return resync();
      if (data.case_id) {
        refreshRow(data.case_id, data.event);
        if (view === "scheduler") refreshLoad();
      }
    };
    socket.onclose = function (e) {
      if (e.code === 4401 || e.code === 4403) {
        setStatus("off", "signed out: reload to sign in");
        return;
      }
      setStatus("reconnecting", "reconnecting…");
      setTimeout(connect, backoff + Math.random() * backoff);
      backoff = Math.min(backoff * 2, 30000);
    };
  }
  connect();
  setInterval(function () {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
  }, 25000);
})();
