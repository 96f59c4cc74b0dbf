/* ReadingRoom reading viewer: every pixel is rendered by the server (DICOMweb `rendered`);
 * this script lays frames out, scrolls, windows (debounced, newest wins), zooms, syncs stacks
 * and plays loops in real time. Patient text is only ever inserted with textContent. */
(() => {
  "use strict";
  const root = document.getElementById("viewer");
  if (!root) return;
  const data = JSON.parse(document.getElementById("viewer-data").textContent);
  const stacks = new Map(data.stacks.map((s) => [s.id, s]));
  const csrfField = document.querySelector("#viewer-csrf [name=csrfmiddlewaretoken]");
  const RR = (window.ReadingRoom = window.ReadingRoom || {});
  RR.data = data;
  RR.csrf = csrfField ? csrfField.value : "";
  RR.tool = "window";
  const geometryCache = new Map();
  const PREFETCH_CONCURRENCY = 6;
  const WINDOW_DEBOUNCE_MS = 40;
  const SYNC_COS = Math.cos((5 * Math.PI) / 180);

  function geometryOf(stack) {
    const key = `${stack.study_uid}/${stack.series_uid}`;
    if (!geometryCache.has(key)) {
      const url = `${root.dataset.viewer}${stack.study_uid}/series/${stack.series_uid}/geometry`;
      geometryCache.set(
        key,
        fetch(url, { credentials: "same-origin" })
          .then((r) => (r.ok ? r.json() : { instances: {} }))
          .catch(() => ({ instances: {} }))
      );
    }
    return geometryCache.get(key);
  }

  function normal(iop) {
    if (!iop || iop.length !== 6) return null;
    const [a, b, c, d, e, f] = iop;
    const n = [b * f - c * e, c * d - a * f, a * e - b * d];
    const len = Math.hypot(...n);
    return len ? n.map((v) => v / len) : null;
  }

  class Viewport {
    constructor(el) {
      this.el = el;
      this.stage = el.querySelector(".stage");
      this.img = el.querySelector("img.frame");
      this.svg = el.querySelector("svg.annotations");
      this.spinner = el.querySelector(".spinner");
      this.messageEl = el.querySelector(".message");
      this.stack = null;
      this.index = 0;
      this.position = 0;
      this.window = null;
      this.zoom = 1;
      this.pan = [0, 0];
      this.inverted = false;
      this.seq = 0;
      this.shownSeq = 0;
      this.playing = false;
      this.links = new Map();
      this.loaded = new Map();
      this.geometry = null;
      this.stats = { expected: 0, shown: 0, late: 0 };
      this.img.addEventListener("error", () => this.showError(this.img.currentSrc || this.img.src));
      this.img.addEventListener("load", () => (this.el.dataset.painted = this.img.src));
    }

    get frames() {
      return this.stack ? this.stack.frames : [];
    }

    setStack(id, preset, startIndex = 0) {
      this.stop();
      this.stack = stacks.get(id) || null;
      this.el.dataset.stack = id || "";
      this.el.classList.toggle("prior-cell", !!this.stack && this.stack.source === "prior");
      this.index = 0;
      this.position = 0;
      this.window = null;
      this.zoom = 1;
      this.pan = [0, 0];
      this.inverted = false;
      this.loaded = new Map();
      this.geometry = null;
      delete this.el.dataset.geometry;
      this.el.querySelectorAll(".ecg-panel, iframe.document").forEach((n) => n.remove());
      this.stage.hidden = false;
      if (!this.stack) {
        this.img.removeAttribute("src");
        this.message("No series for this viewport");
        return;
      }
      this.message("");
      if (this.stack.kind === "ecg") {
        this.stage.hidden = true;
        if (RR.ecg) RR.ecg.mount(this, this.stack);
        this.writeOverlays();
        return;
      }
      if (this.stack.kind === "document") {
        this.stage.hidden = true;
        const frame = document.createElement("iframe");
        frame.className = "document";
        frame.title = "Document";
        const [sop] = this.stack.frames[0];
        frame.src = `${root.dataset.viewer}${this.stack.study_uid}/series/${this.stack.series_uid}/instances/${sop}/document`;
        this.el.appendChild(frame);
        this.writeOverlays();
        return;
      }
      if (preset) this.applyPreset(preset, false);
      this.layout();
      this.show(startIndex);
      geometryOf(this.stack).then((g) => {
        if (this.stack && g) {
          this.geometry = g.instances || {};
          this.el.dataset.geometry = "ready";
          this.writeOverlays();
        }
      });
      if (this.stack.multiframe) this.prefetchAll();
    }

    describe(index = this.index) {
      const item = this.frames[index];
      return item && this.geometry ? this.geometry[item[0]] || null : null;
    }

    layout() {
      if (!this.stack || !this.stack.columns) return;
      const box = this.el.getBoundingClientRect();
      const fit = Math.min(box.width / this.stack.columns, box.height / this.stack.rows) || 1;
      const w = this.stack.columns * fit;
      const h = this.stack.rows * fit;
      this.stage.style.width = `${w}px`;
      this.stage.style.height = `${h}px`;
      this.stage.style.transform = `translate(${this.pan[0] - w / 2}px, ${this.pan[1] - h / 2}px) scale(${this.zoom})`;
      this.svg.setAttribute("viewBox", `0 0 ${this.stack.columns} ${this.stack.rows}`);
      this.svg.setAttribute("preserveAspectRatio", "none");
    }

    url(index, win = this.window) {
      const [sop, frame] = this.frames[index];
      const s = this.stack;
      const params = new URLSearchParams();
      params.set("accept", s.multiframe ? "image/jpeg" : "image/png");
      if (win) params.set("window", `${round(win.center)},${round(win.width)}`);
      return `${root.dataset.dicomweb}${s.study_uid}/series/${s.series_uid}/instances/${sop}/frames/${frame}/rendered?${params}`;
    }

    /* Show frame `index`: keep the current picture until the new one has loaded; a response
     * that arrives after a newer request was made is dropped (newest wins). */
    show(index, fromSync = false) {
      if (!this.stack || this.stack.kind !== "image") return;
      const n = this.frames.length;
      this.index = Math.max(0, Math.min(n - 1, index));
      this.position = this.index;
      this.el.dataset.frame = String(this.index + 1);
      this.request(this.url(this.index));
      this.writeOverlays();
      if (RR.measure) RR.measure.redraw(this);
      if (!fromSync) syncFrom(this);
    }

    request(url) {
      const seq = ++this.seq;
      const ready = this.loaded.get(url);
      if (ready) {
        this.display(url, seq);
        return;
      }
      this.spinner.hidden = false;
      this.el.dataset.imageState = "loading";
      const loader = new Image();
      loader.onload = () => this.display(url, seq);
      loader.onerror = () => {
        if (seq === this.seq) this.showError(url);
      };
      loader.src = url;
    }

    display(url, seq) {
      if (seq < this.shownSeq) return;
      this.shownSeq = seq;
      this.img.src = url;
      this.message("");
      if (seq === this.seq) {
        this.spinner.hidden = true;
        this.el.dataset.imageState = "ready";
        this.el.dataset.shownUrl = url;
      }
    }

    async showError(url) {
      this.spinner.hidden = true;
      this.el.dataset.imageState = "error";
      let reason = "the server could not render this frame";
      try {
        const r = await fetch(url, { credentials: "same-origin" });
        if (!r.ok) reason = (await r.text()).slice(0, 300) || reason;
      } catch (e) {
        reason = "the image could not be fetched (network)";
      }
      this.message(`This frame cannot be displayed: ${reason}`);
    }

    message(text) {
      this.messageEl.textContent = text;
      this.messageEl.hidden = !text;
    }

    step(delta) {
      if (!this.stack) return;
      const n = this.frames.length;
      if (this.stack.multiframe) this.show((((this.index + delta) % n) + n) % n);
      else this.show(this.index + delta);
    }

    writeOverlays() {
      const study = this.stack && this.stack.source === "prior" ? data.prior : data.current;
      const q = (sel) => this.el.querySelector(sel);
      if (!study || !this.stack) return;
      q(".overlay.tl").textContent = [
        study.patient,
        [study.age, study.sex].filter(Boolean).join(" "),
        `MRN ${study.mrn} (${study.issuer})`,
      ].join("\n");
      q(".overlay.tr").textContent = [
        this.stack.source === "prior" ? `PRIOR · ${study.institution}` : study.institution,
        study.study_date,
        study.description,
      ].join("\n");
      const n = this.frames.length;
      const rate = this.stack.frame_time_ms ? ` · ${(1000 / this.stack.frame_time_ms).toFixed(1)} fps` : "";
      q(".overlay.bl").textContent =
        `Se ${this.stack.series_number ?? "–"} ${this.stack.description || ""}\n` +
        `${this.stack.multiframe ? "Fr" : "Im"} ${this.index + 1}/${n}${rate}`;
      const win = this.window || this.headerWindow();
      q(".overlay.br").textContent =
        (win ? `W ${round(win.width)} L ${round(win.center)}` : "W/L from image") +
        (this.window && this.window.name ? ` (${this.window.name})` : "") +
        `\nZoom ${Math.round(this.zoom * 100)}%${this.inverted ? " · inverted" : ""}`;
      const d = this.describe();
      const markers = (d && d.markers) || {};
      for (const side of ["top", "bottom", "left", "right"]) {
        q(`.marker.${side}`).textContent = markers[side] || "";
      }
      this.el.dataset.window = this.window ? `${round(this.window.center)},${round(this.window.width)}` : "";
    }

    headerWindow() {
      const d = this.describe();
      const w = d && d.windows && d.windows[0];
      return w ? { center: w.center, width: w.width } : null;
    }

    applyPreset(key, render = true) {
      const list = (this.stack && data.presets[this.stack.modality]) || [];
      const preset = list.find((p) => p.key === String(key));
      if (preset) this.window = { center: preset.center, width: preset.width, name: preset.name };
      else if (String(key) === "1") this.window = null; // no presets: 1 = the image's own window
      else return;
      if (render) this.show(this.index, true);
    }

    dragWindow(dx, dy) {
      const base = this.window || this.headerWindow() || this.guessWindow();
      const speed = Math.max(1, base.width / 256);
      this.window = { center: base.center - dy * speed, width: Math.max(1, base.width + dx * speed) };
      clearTimeout(this.windowTimer);
      this.writeOverlays();
      this.windowTimer = setTimeout(() => this.request(this.url(this.index)), WINDOW_DEBOUNCE_MS);
    }

    guessWindow() {
      return this.stack.modality === "CT" ? { center: 40, width: 400 } : { center: 128, width: 256 };
    }

    transform(zoom, pan) {
      this.zoom = Math.max(0.1, Math.min(20, zoom));
      this.pan = pan;
      this.layout();
      this.writeOverlays();
    }

    reset() {
      this.window = null;
      this.inverted = false;
      this.img.classList.remove("inverted");
      this.transform(1, [0, 0]);
      this.show(this.index, true);
    }

    invert() {
      this.inverted = !this.inverted;
      this.img.classList.toggle("inverted", this.inverted);
      this.writeOverlays();
    }

    /* Fetch every frame of a loop ahead, a few at a time, so playback never waits. */
    prefetchAll() {
      const urls = this.frames.map((_, i) => this.url(i));
      const stackId = this.stack.id;
      let next = 0;
      const pump = () => {
        if (!this.stack || this.stack.id !== stackId || next >= urls.length) return;
        const url = urls[next++];
        const img = new Image();
        img.onload = img.onerror = () => {
          if (img.naturalWidth) this.loaded.set(url, img);
          this.el.dataset.loaded = String(this.loaded.size);
          pump();
        };
        img.src = url;
      };
      for (let i = 0; i < PREFETCH_CONCURRENCY; i++) pump();
    }

    /* Real time: the frame to show is computed from the clock, so a slow browser skips
     * frames instead of slowing the loop down. */
    play() {
      if (!this.stack || !this.stack.multiframe || this.playing) return;
      this.playing = true;
      this.el.dataset.playing = "true";
      const frameTime = (this.stack.frame_time_ms || 33.3) / RR.speed;
      const start = performance.now();
      const startPosition = this.position;
      const n = this.frames.length;
      const tick = (now) => {
        if (!this.playing) return;
        const target = startPosition + Math.floor((now - start) / frameTime);
        if (target > this.position) {
          const index = target % n;
          const url = this.url(index);
          this.stats.expected += target - this.position;
          if (this.loaded.has(url)) {
            this.img.src = url;
            this.stats.shown += 1;
            this.index = index;
            this.position = target;
            this.el.dataset.frame = String(index + 1);
            this.el.dataset.position = String(target);
            this.writeOverlays();
          } else {
            this.stats.late += 1;
            this.stats.expected -= target - this.position; // counted again when shown
          }
        }
        this.raf = requestAnimationFrame(tick);
      };
      this.raf = requestAnimationFrame(tick);
    }

    stop() {
      this.playing = false;
      this.el.dataset.playing = "false";
      cancelAnimationFrame(this.raf);
    }
  }

  function round(v) {
    return Math.round(v * 10) / 10;
  }

  const viewports = [...root.querySelectorAll(".viewport")].map((el) => new Viewport(el));
  RR.viewports = viewports;
  RR.speed = 1;
  let active = viewports[0];
  RR.active = () => active;

  function activate(vp) {
    if (!vp || vp === active) return;
    active.el.classList.remove("active");
    active = vp;
    vp.el.classList.add("active");
  }

  /* Stacks with a shared Frame of Reference and the same orientation follow by slice
   * position; manually linked stacks follow by the offset they had when linked. */
  let syncing = false;
  function syncFrom(source) {
    if (syncing || !source.stack || source.stack.multiframe) return;
    syncing = true;
    try {
      for (const other of viewports) {
        if (other === source || !other.stack || other.stack.kind !== "image") continue;
        if (source.links.has(other)) {
          other.show(source.index + source.links.get(other), true);
          continue;
        }
        const a = source.describe();
        const b = other.describe(0);
        if (!a || !b || !a.frame_of_reference_uid) continue;
        if (a.frame_of_reference_uid !== b.frame_of_reference_uid) continue;
        const na = normal(a.orientation);
        const nb = normal(b.orientation);
        if (!na || !nb || Math.abs(na[0] * nb[0] + na[1] * nb[1] + na[2] * nb[2]) < SYNC_COS) continue;
        const target = slicePosition(source, source.index);
        if (target == null) continue;
        let best = null;
        other.frames.forEach((_, i) => {
          const p = slicePosition(other, i);
          if (p != null && (best == null || Math.abs(p - target) < Math.abs(best.p - target))) best = { i, p };
        });
        if (best && best.i !== other.index) other.show(best.i, true);
      }
    } finally {
      syncing = false;
    }
  }

  function slicePosition(vp, index) {
    const d = vp.describe(index);
    if (!d || !d.positions) return null;
    return d.positions[vp.frames[index][1] - 1] ?? null;
  }

  function linkStacks() {
    const a = active;
    const na = normal((a.describe() || {}).orientation);
    let linked = 0;
    for (const other of viewports) {
      if (other === a || !other.stack || other.stack.kind !== "image" || other.stack.multiframe) continue;
      const nb = normal((other.describe() || {}).orientation);
      const same = na && nb && Math.abs(na[0] * nb[0] + na[1] * nb[1] + na[2] * nb[2]) >= SYNC_COS;
      if (!same) continue; // only same-orientation stacks sync
      a.links.set(other, other.index - a.index);
      other.links.set(a, a.index - other.index);
      linked++;
    }
    root.dataset.linked = String(linked);
  }

  function setTool(tool) {
    RR.tool = tool;
    root.querySelectorAll("[data-tool]").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
    if (RR.measure) RR.measure.cancel();
  }

  function togglePlay(vp) {
    if (vp.playing) vp.stop();
    else vp.play();
  }

  function doAction(name) {
    if (name === "invert") active.invert();
    else if (name === "reset") active.reset();
    else if (name === "key" && RR.measure) RR.measure.toggleKey(active);
    else if (name === "link") linkStacks();
    else if (name === "play") togglePlay(active);
    else if (name === "help") toggleHelp();
  }

  function toggleHelp() {
    const help = document.getElementById("help");
    if (help.open) help.close();
    else help.showModal();
  }

  // Pointer: drag tools on the active viewport ------------------------------------------------
  viewports.forEach((vp) => {
    vp.el.addEventListener("mousedown", (event) => {
      activate(vp);
      if (!vp.stack || vp.stack.kind !== "image") return;
      event.preventDefault();
      const tool = event.button === 1 ? "pan" : event.button === 2 ? "zoom" : RR.tool;
      if (RR.measure && RR.measure.handles(tool)) {
        RR.measure.down(vp, tool, event);
        return;
      }
      let last = [event.clientX, event.clientY];
      const move = (e) => {
        const dx = e.clientX - last[0];
        const dy = e.clientY - last[1];
        last = [e.clientX, e.clientY];
        if (tool === "window") vp.dragWindow(dx, dy);
        else if (tool === "zoom") vp.transform(vp.zoom * Math.exp(-dy / 200), vp.pan);
        else if (tool === "pan") vp.transform(vp.zoom, [vp.pan[0] + dx, vp.pan[1] + dy]);
      };
      const up = () => {
        window.removeEventListener("mousemove", move);
        window.removeEventListener("mouseup", up);
      };
      window.addEventListener("mousemove", move);
      window.addEventListener("mouseup", up);
    });
    vp.el.addEventListener("contextmenu", (e) => e.preventDefault());
    vp.el.addEventListener(
      "wheel",
      (event) => {
        if (!vp.stack || vp.stack.kind !== "image") return;
        event.preventDefault();
        activate(vp);
        if (event.ctrlKey) vp.transform(vp.zoom * Math.exp(-event.deltaY / 300), vp.pan);
        else vp.step(event.deltaY > 0 ? 1 : -1);
      },
      { passive: false }
    );
  });

  root.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  root.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", () => doAction(b.dataset.action)));
  root.querySelectorAll(".stack-button").forEach((b) =>
    b.addEventListener("click", () => {
      active.setStack(b.dataset.stack);
      if (active.stack && active.stack.multiframe) active.play();
    })
  );
  const speed = document.getElementById("cine-speed");
  speed.addEventListener("change", () => {
    RR.speed = parseFloat(speed.value) || 1;
    viewports.filter((vp) => vp.playing).forEach((vp) => {
      vp.stop();
      vp.play();
    });
  });

  // Keyboard ----------------------------------------------------------------------------------
  const TOOL_KEYS = { w: "window", z: "zoom", p: "pan", d: "distance", a: "angle", e: "ellipse" };
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
    const help = document.getElementById("help");
    if (help.open && event.key !== "?") return;
    const key = event.key;
    const vp = active;
    let handled = true;
    if (key === "ArrowDown" || key === "ArrowRight") vp.playing ? null : vp.step(1);
    else if (key === "ArrowUp" || key === "ArrowLeft") vp.playing ? null : vp.step(-1);
    else if (key === "PageDown" || key === "PageUp") switchStack(vp, key === "PageDown" ? 1 : -1);
    else if (/^[1-5]$/.test(key)) vp.applyPreset(key);
    else if (key === " ") vp.stack && vp.stack.multiframe ? togglePlay(vp) : vp.reset();
    else if (key === "c" || key === "C") togglePlay(vp);
    else if (key === "i" || key === "I") vp.invert();
    else if (key === "k" || key === "K") doAction("key");
    else if (key === "l" || key === "L") linkStacks();
    else if (key === "?") toggleHelp();
    else if (key === "Escape" && RR.measure) RR.measure.cancel();
    else if (key === "Tab") activate(viewports[(viewports.indexOf(vp) + (event.shiftKey ? -1 : 1) + viewports.length) % viewports.length]);
    else if (TOOL_KEYS[key.toLowerCase()]) setTool(TOOL_KEYS[key.toLowerCase()]);
    else handled = false;
    if (handled) event.preventDefault();
  });

  function switchStack(vp, delta) {
    const source = vp.stack ? vp.stack.source : "current";
    const ids = data.stacks.filter((s) => s.source === source && s.kind !== "other").map((s) => s.id);
    if (!ids.length) return;
    const at = Math.max(0, ids.indexOf(vp.stack && vp.stack.id));
    vp.setStack(ids[(at + delta + ids.length) % ids.length]);
  }

  window.addEventListener("resize", () => viewports.forEach((vp) => vp.layout()));

  // Start: hang the protocol's layout; loops autoplay in echo layouts. -------------------------
  viewports.forEach((vp, i) => {
    const cell = data.layout.cells[i] || {};
    vp.setStack(cell.stack || null, cell.preset || "", cell.index || 0); // index: a key image
    if (data.layout.autoplay && vp.stack && vp.stack.multiframe) vp.play();
  });
  // Reading the images of a case this reader holds keeps its lock alive (the server only
  // touches a lock the reader already holds).
  if (root.dataset.heartbeat) {
    setInterval(() => {
      fetch(root.dataset.heartbeat, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": RR.csrf } });
    }, 60000);
  }
  root.dataset.ready = "true";
})();
