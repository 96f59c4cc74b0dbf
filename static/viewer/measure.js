/* Measurements (distance, angle, ellipse ROI) and key images. The browser only collects
 * points in image pixel coordinates; the server computes every value from the image's own
 * calibration, so a length is in mm only when the image is calibrated, else in px. */
(() => {
  "use strict";
  const RR = window.ReadingRoom;
  const root = document.getElementById("viewer");
  if (!RR || !root) return;
  const SVG = "http://www.w3.org/2000/svg";
  const TOOLS = { distance: 2, angle: 3, ellipse: 2 };
  let saved = [];
  let pending = null; // {vp, tool, points}

  function toImage(vp, event) {
    const box = vp.img.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * vp.stack.columns;
    const y = ((event.clientY - box.top) / box.height) * vp.stack.rows;
    return [Math.round(x * 100) / 100, Math.round(y * 100) / 100];
  }

  function currentLabel() {
    const select = document.getElementById("measure-label");
    return select ? select.value : "";
  }

  function element(name, attrs, text) {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text != null) el.textContent = text;
    return el;
  }

  function shape(kind, points) {
    if (kind === "ellipse" && points.length === 2) {
      const [[x0, y0], [x1, y1]] = points;
      return element("ellipse", { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, rx: Math.abs(x1 - x0) / 2, ry: Math.abs(y1 - y0) / 2 });
    }
    return element("polyline", { points: points.map((p) => p.join(",")).join(" ") });
  }

  function label(m) {
    if (m.kind === "ellipse") {
      const s = m.stats || {};
      return `mean ${fmt(s.mean)} ${m.unit === "HU" ? "HU" : ""} SD ${fmt(s.sd)} · ${fmt(s.area)} ${s.area_unit || ""}`;
    }
    if (m.kind === "angle") return `${fmt(m.value)}°`;
    return `${fmt(m.value)} ${m.unit}`;
  }

  function fmt(v) {
    return typeof v === "number" ? (Math.round(v * 10) / 10).toFixed(1) : "–";
  }

  function redraw(vp) {
    if (!vp.stack || vp.stack.kind !== "image") return;
    vp.svg.replaceChildren();
    const [sop, frame] = vp.frames[vp.index] || [];
    const scale = vp.stack.columns / Math.max(1, vp.img.getBoundingClientRect().width);
    for (const m of saved.filter((m) => m.sop === sop && m.frame === frame)) {
      const g = element("g", { class: `measurement ${m.kind}`, "data-id": m.id });
      g.appendChild(shape(m.kind, m.points));
      const [x, y] = m.points[m.points.length - 1];
      const text = element("text", { x: x + 4 * scale, y: y - 4 * scale, class: "measurement-label", "font-size": 12 * scale }, label(m));
      g.appendChild(text);
      vp.svg.appendChild(g);
    }
    if (pending && pending.vp === vp && pending.points.length) {
      const g = element("g", { class: "pending" });
      g.appendChild(shape(pending.tool, pending.points.concat(pending.hover ? [pending.hover] : [])));
      vp.svg.appendChild(g);
    }
  }

  function listItem(m) {
    const li = document.createElement("li");
    li.dataset.id = m.id;
    const caveat = (m.stats && m.stats.caveat) || "";
    li.textContent = `${m.label ? m.label + ": " : ""}${m.kind} ${label(m)}${m.calibration === "none" ? " (uncalibrated)" : ""}${caveat ? " *" : ""}`;
    if (caveat) li.title = caveat; // e.g. Imager Pixel Spacing: measured at the detector
    return li;
  }

  async function save(vp, tool, points) {
    const [sop, frame] = vp.frames[vp.index];
    const response = await fetch(root.dataset.measurements, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": RR.csrf },
      body: JSON.stringify({ sop, frame, kind: tool, points, label: currentLabel() }),
    });
    const body = await response.json().catch(() => ({ error: "bad response" }));
    if (!response.ok) {
      vp.message(`Measurement not saved: ${body.error || response.status}`);
      setTimeout(() => vp.message(""), 3000);
      return;
    }
    saved.push(body);
    document.getElementById("measurement-list").appendChild(listItem(body));
    vp.el.dataset.lastMeasurement = label(body);
    redraw(vp);
  }

  RR.measure = {
    handles: (tool) => tool in TOOLS,
    down(vp, tool, event) {
      if (!pending || pending.vp !== vp || pending.tool !== tool) pending = { vp, tool, points: [] };
      const point = toImage(vp, event);
      pending.points.push(point);
      const dragTool = tool !== "angle";
      const move = (e) => {
        pending.hover = toImage(vp, e);
        redraw(vp);
      };
      const finish = (e) => {
        window.removeEventListener("mousemove", move);
        window.removeEventListener("mouseup", finish);
        if (dragTool && pending && pending.points.length === 1) {
          const end = toImage(vp, e);
          if (Math.hypot(end[0] - point[0], end[1] - point[1]) > 0.5) pending.points.push(end);
        }
        complete(vp);
      };
      window.addEventListener("mousemove", move);
      window.addEventListener("mouseup", finish);
    },
    cancel() {
      const vp = pending && pending.vp;
      pending = null;
      if (vp) redraw(vp);
    },
    redraw,
    async toggleKey(vp) {
      if (!vp.stack || vp.stack.kind !== "image") return;
      const [sop, frame] = vp.frames[vp.index];
      const form = new FormData();
      form.set("sop", sop);
      form.set("frame", frame);
      const r = await fetch(root.dataset.keyImages, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": RR.csrf },
        body: form,
      });
      if (r.ok) {
        const body = await r.json();
        document.getElementById("key-count").textContent = String(body.count);
        vp.el.dataset.key = body.key ? "true" : "false";
      }
    },
  };

  function complete(vp) {
    if (!pending) return;
    pending.hover = null;
    if (pending.points.length >= TOOLS[pending.tool]) {
      const { tool, points } = pending;
      pending = null;
      save(vp, tool, points.slice(0, TOOLS[tool]));
    }
    redraw(vp);
  }

  fetch(root.dataset.measurements, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : { measurements: [] }))
    .then((body) => {
      saved = body.measurements || [];
      RR.viewports.forEach(redraw);
    });
})();
