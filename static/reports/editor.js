/* Report editor: every keystroke is kept in this browser at once (localStorage) and sent to
 * the server a moment later, so neither a reload nor a lost connection loses more than a
 * few seconds of typing; a draft the server has not confirmed is sent again on the next
 * load. Macros: type .keyword then space in a text field. */
(() => {
  "use strict";
  const root = document.getElementById("editor");
  if (!root) return;
  const form = document.getElementById("report-form");
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  const macros = JSON.parse(document.getElementById("report-macros").textContent || "{}");
  const state = document.getElementById("save-state");
  const key = `readingroom-report-${root.dataset.report}`;
  const SAVE_DELAY_MS = 800;
  const RETRY_MS = 3000;
  const HEARTBEAT_MS = 60000;
  let timer = null;
  let leaving = false;

  function collect() {
    const body = { values: {} };
    form.querySelectorAll("[data-field]").forEach((el) => (body.values[el.name] = el.value));
    form.querySelectorAll("[data-top]").forEach((el) => (body[el.name] = el.value));
    return body;
  }

  function apply(body) {
    for (const [name, value] of Object.entries(body.values || {})) {
      const el = form.querySelector(`[data-field][name="${CSS.escape(name)}"]`);
      if (el) el.value = value;
    }
    for (const [name, value] of Object.entries(body)) {
      const el = form.querySelector(`[data-top][name="${CSS.escape(name)}"]`);
      if (el && name !== "values") el.value = value ?? "";
    }
  }

  function keepLocally() {
    localStorage.setItem(key, JSON.stringify({ body: collect(), at: Date.now() }));
    state.textContent = "saving…";
    clearTimeout(timer);
    timer = setTimeout(save, SAVE_DELAY_MS);
  }

  async function save() {
    const pending = localStorage.getItem(key);
    if (!pending) return;
    const { body, at } = JSON.parse(pending);
    try {
      const response = await fetch(root.dataset.autosave, {
        method: "POST",
        credentials: "same-origin",
        keepalive: true,
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        state.textContent = `not saved: ${answer.error || response.status}`;
        if (response.status >= 500) timer = setTimeout(save, RETRY_MS);
        return;
      }
      const latest = JSON.parse(localStorage.getItem(key) || "null");
      // Nothing newer typed: the browser's copy can go. Not while leaving the page: the
      // next page may already be rendering the older server draft, so it must still find
      // this copy, restore it and send it again (a repeated save is harmless).
      if (latest && latest.at === at && !leaving) localStorage.removeItem(key);
      state.textContent = `saved ${new Date(answer.saved_at).toLocaleTimeString()}`;
      root.dataset.savedAt = answer.saved_at;
      showCalculations(answer);
    } catch (error) {
      state.textContent = "offline: kept in this browser, retrying";
      timer = setTimeout(save, RETRY_MS);
    }
  }

  function showCalculations(answer) {
    const calc = answer.calc || {};
    document.getElementById("calc-bsa").textContent = calc.bsa
      ? `${calc.bsa.value_m2} m² (${calc.bsa.formula})`
      : "needs height and weight";
    document.querySelectorAll("[data-z]").forEach((el) => {
      const z = (calc.zscores || {})[el.dataset.z];
      el.textContent = z ? `${z.text} · ${z.range}${z.abnormal ? " abnormal" : ""}` : "";
    });
    document.getElementById("calc-ecg").textContent = Object.entries(calc.ecg || {})
      .map(([k, v]) => `${k} ${v}`)
      .join(" · ");
    const flags = document.getElementById("calc-flags");
    flags.replaceChildren(
      ...(calc.flags || []).map((text) => {
        const li = document.createElement("li");
        li.textContent = text;
        return li;
      })
    );
    const missing = answer.missing || [];
    document.getElementById("missing").textContent = missing.length ? `Required: ${missing.join(", ")}` : "";
  }

  function expandMacro(event) {
    const el = event.target;
    if (el.tagName !== "TEXTAREA" || !(event.data === " " || event.inputType === "insertLineBreak")) return;
    const before = el.value.slice(0, el.selectionStart);
    const match = before.match(/\.(\w+)\s$/);
    if (!match || !(match[1] in macros)) return;
    const start = before.length - match[0].length;
    el.value = el.value.slice(0, start) + macros[match[1]] + " " + el.value.slice(el.selectionStart);
    el.selectionStart = el.selectionEnd = start + macros[match[1]].length + 1;
  }

  form.addEventListener("input", (event) => {
    expandMacro(event);
    keepLocally();
  });
  form.addEventListener("change", keepLocally);
  window.addEventListener("online", save);
  window.addEventListener("pagehide", () => {
    leaving = true;
    if (localStorage.getItem(key)) save();
  });

  // A draft typed here that the server never confirmed comes back and is sent again.
  const unsent = JSON.parse(localStorage.getItem(key) || "null");
  if (unsent) {
    apply(unsent.body);
    state.textContent = "restoring unsaved typing…";
    save();
  }
  // The case's lock lives while this page is open, typing or not.
  setInterval(() => {
    fetch(root.dataset.heartbeat, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf } });
  }, HEARTBEAT_MS);
  root.dataset.ready = "true";
})();
