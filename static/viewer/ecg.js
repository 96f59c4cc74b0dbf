/* 12-lead ECG panel: the server draws the SVG in millimetres on a true grid (viewBox units are
 * mm); this script mounts it, switches paper speed and gain, and measures with calipers.
 * Time = Δx / (mm/s); amplitude = −Δy / (mm/mV). QTc by Bazett (QT/√RR) and Fridericia
 * (QT/∛RR), RR in seconds (CLINICAL.md, ECG intervals). */
(() => {
  "use strict";
  const RR = window.ReadingRoom;
  const root = document.getElementById("viewer");
  if (!RR || !root) return;
  const SVG = "http://www.w3.org/2000/svg";
  const INTERVALS = ["RR", "PR", "QRS", "QT"];

  function select(name, options, value) {
    const label = document.createElement("label");
    label.textContent = `${name} `;
    const sel = document.createElement("select");
    sel.name = name.toLowerCase();
    for (const [v, text] of options) {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = text;
      o.selected = v === value;
      sel.appendChild(o);
    }
    label.appendChild(sel);
    return [label, sel];
  }

  function mount(vp, stack) {
    const panel = document.createElement("div");
    panel.className = "ecg-panel";
    const tools = document.createElement("div");
    tools.className = "ecg-tools";
    const [speedLabel, speed] = select("Speed", [["12.5", "12.5 mm/s"], ["25", "25 mm/s"], ["50", "50 mm/s"]], "25");
    const [gainLabel, gain] = select("Gain", [["5", "5 mm/mV"], ["10", "10 mm/mV"], ["20", "20 mm/mV"]], "10");
    const [intervalLabel, interval] = select("Caliper", [["", "free"], ...INTERVALS.map((i) => [i, i])], "");
    const readout = document.createElement("span");
    readout.className = "caliper-readout";
    readout.textContent = "Click two points to measure";
    const intervals = document.createElement("span");
    intervals.className = "intervals";
    tools.append(speedLabel, gainLabel, intervalLabel, readout, intervals);
    const holder = document.createElement("div");
    panel.append(tools, holder);
    vp.el.appendChild(panel);
    const measured = {};
    let first = null;

    async function load() {
      const [sop] = stack.frames[0];
      const url = `${root.dataset.viewer}${stack.study_uid}/series/${stack.series_uid}/instances/${sop}/ecg.svg?speed=${speed.value}&gain=${gain.value}`;
      vp.spinner.hidden = false;
      const response = await fetch(url, { credentials: "same-origin" });
      vp.spinner.hidden = true;
      if (!response.ok) {
        vp.message(`This ECG cannot be displayed: ${(await response.text()).slice(0, 300)}`);
        return;
      }
      const doc = new DOMParser().parseFromString(await response.text(), "image/svg+xml");
      const svg = document.importNode(doc.documentElement, true);
      holder.replaceChildren(svg);
      first = null;
      svg.addEventListener("click", (event) => caliper(svg, event));
      vp.el.dataset.ecgReady = "true";
    }

    function toMm(svg, event) {
      const point = svg.createSVGPoint();
      point.x = event.clientX;
      point.y = event.clientY;
      return point.matrixTransform(svg.getScreenCTM().inverse());
    }

    function caliper(svg, event) {
      const p = toMm(svg, event);
      svg.querySelectorAll(".caliper.pending").forEach((n) => n.remove());
      if (!first) {
        first = p;
        const mark = document.createElementNS(SVG, "line");
        mark.setAttribute("class", "caliper pending");
        for (const [k, v] of Object.entries({ x1: p.x, x2: p.x, y1: p.y - 5, y2: p.y + 5 })) mark.setAttribute(k, v);
        svg.appendChild(mark);
        return;
      }
      const mmPerS = parseFloat(svg.dataset.mmPerS);
      const mmPerMv = parseFloat(svg.dataset.mmPerMv);
      const ms = (Math.abs(p.x - first.x) / mmPerS) * 1000;
      const mv = -(p.y - first.y) / mmPerMv;
      svg.querySelectorAll(".caliper").forEach((n) => n.remove());
      const first0 = first;
      const line = document.createElementNS(SVG, "path");
      line.setAttribute("class", "caliper");
      line.setAttribute("d", `M${first.x},${first.y - 4}v8M${first.x},${first.y}H${p.x}M${p.x},${first.y - 4}v8`);
      svg.appendChild(line);
      first = null;
      const bpm = ms > 0 ? 60000 / ms : 0;
      readout.textContent = `${ms.toFixed(0)} ms · ${bpm.toFixed(0)} bpm · ${mv.toFixed(2)} mV`;
      vp.el.dataset.caliperMs = ms.toFixed(1);
      if (interval.value) {
        measured[interval.value] = ms;
        showIntervals();
        saveInterval(interval.value, [[first0.x, first0.y], [p.x, p.y]], parseFloat(svg.dataset.mmPerS));
      }
    }

    /* The interval goes to the server (which recomputes the time from the points and the
     * paper speed) so the report's ECG fields can take it. */
    async function saveInterval(name, points, speedMmS) {
      const [sop] = stack.frames[0];
      const response = await fetch(root.dataset.measurements, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": RR.csrf },
        body: JSON.stringify({ sop, frame: 1, kind: "interval", points, speed: speedMmS, label: name.toLowerCase() }),
      });
      vp.el.dataset.intervalSaved = response.ok ? name : `failed: ${response.status}`;
    }

    function showIntervals() {
      const parts = INTERVALS.filter((k) => measured[k]).map((k) => `${k} ${measured[k].toFixed(0)} ms`);
      if (measured.RR) parts.push(`HR ${(60000 / measured.RR).toFixed(0)} bpm`);
      if (measured.QT && measured.RR) {
        const rr = measured.RR / 1000;
        parts.push(`QTc Bazett ${(measured.QT / Math.sqrt(rr)).toFixed(0)} ms`);
        parts.push(`QTc Fridericia ${(measured.QT / Math.cbrt(rr)).toFixed(0)} ms`);
      }
      intervals.textContent = parts.length ? ` · ${parts.join(" · ")}` : "";
    }

    speed.addEventListener("change", load);
    gain.addEventListener("change", load);
    load();
  }

  RR.ecg = { mount };
  // viewer.js ran first: mount the ECG stacks it could not mount yet.
  (RR.viewports || []).forEach((vp) => {
    if (vp.stack && vp.stack.kind === "ecg" && !vp.el.querySelector(".ecg-panel")) mount(vp, vp.stack);
  });
})();
