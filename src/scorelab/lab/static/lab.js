// scorelab lab: knobs -> POST /api/view -> plots of the unchanged (grey) and changed (blue) policy.
"use strict";

const BASE = "#8c8c8c", CHANGED = "#1f77b4";
const state = { preset: null, knobs: [], values: {}, seq: 0, shown: 0, last: null, timer: null };
const $ = (id) => document.getElementById(id);

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function fmtKnob(k, v) {
  if (k.kind === "bool") return v ? "on" : "off";
  if (k.unit === "share") return (100 * v).toFixed(0) + " %";
  if (k.unit === "rate") return (v * 1e5).toPrecision(3) + " per 100k a day";
  if (k.unit === "days") return v + " days";
  if (k.unit === "points") return (v > 0 ? "+" : "") + v;
  return Number(v).toFixed(2);
}

async function getJSON(url, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(url, opts);
  const data = await r.json();
  if (!r.ok) throw data;
  return data;
}

function showError(e) {
  const box = $("error");
  if (!e) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = e.error || String(e);
}

function setStatus(text, busy) {
  $("status").textContent = text;
  document.body.dataset.state = busy ? "busy" : "ready";
}

// ------------------------------------------------------------------ controls

function buildKnobs(info) {
  state.knobs = info.knobs;
  state.values = {};
  const holder = $("knobs");
  holder.innerHTML = "";
  const sections = {};
  info.knobs.forEach((k, i) => {
    state.values[k.path] = k.value;
    let fs = sections[k.section];
    if (!fs) {
      fs = document.createElement("fieldset");
      fs.innerHTML = `<legend>${esc(k.section)}</legend>`;
      holder.appendChild(fs);
      sections[k.section] = fs;
    }
    const row = document.createElement("div");
    row.className = "knob";
    row.dataset.path = k.path;
    const id = "knob-" + i;
    if (k.kind === "bool") {
      row.innerHTML = `<div class="top"><label><input type="checkbox" id="${id}" ${k.value ? "checked" : ""}> ${esc(k.label)}</label>
        <span class="value"></span></div>`;
    } else {
      row.innerHTML = `<div class="top"><label for="${id}">${esc(k.label)}</label><span class="value"></span>
        <button type="button" title="back to the preset's value (${esc(fmtKnob(k, k.value))})" aria-label="reset">↺</button></div>
        <input type="range" id="${id}" min="${k.min}" max="${k.max}" step="${k.step}" value="${k.value}"
          aria-label="${esc(k.label)}">`;
    }
    fs.appendChild(row);
    const input = row.querySelector("input");
    input.dataset.path = k.path;
    const show = () => {
      const v = state.values[k.path];
      row.querySelector(".value").textContent = fmtKnob(k, v);
      row.classList.toggle("moved", v !== k.value);
    };
    input.addEventListener(k.kind === "bool" ? "change" : "input", () => {
      let v = k.kind === "bool" ? input.checked : Number(input.value);
      if (k.kind === "int") v = Math.round(v);
      state.values[k.path] = v;
      show();
      schedule();
    });
    const reset = row.querySelector("button");
    if (reset) reset.addEventListener("click", () => { input.value = k.value; state.values[k.path] = k.value; show(); schedule(); });
    show();
  });
}

function changes() {
  const out = {};
  for (const k of state.knobs) if (state.values[k.path] !== k.value) out[k.path] = state.values[k.path];
  return out;
}

function request() {
  return { preset: state.preset, population: Number($("population").value), days: Number($("days").value),
           seed: Number($("seed").value), changes: changes() };
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(refresh, 300);
}

async function refresh() {
  const seq = ++state.seq;
  setStatus("simulating both policies…", true);
  const t0 = performance.now();
  try {
    const v = await getJSON("/api/view", request());
    if (seq !== state.seq) return;  // a newer request is on its way
    showError(null);
    render(v);
    const ms = performance.now() - t0;
    setStatus(`answered in ${(ms / 1000).toFixed(2)} s (${v.population.toLocaleString()} citizens × ${v.days} days, ` +
              `${Object.keys(v.changes).length} change(s))`, false);
  } catch (e) {
    if (seq !== state.seq) return;
    showError(e);
    setStatus("not simulated: see the message above the plots", false);
  }
}

// ------------------------------------------------------------------ plots

const layoutBase = (title, ytitle, extra) => Object.assign({
  title: { text: title, font: { size: 14 }, x: 0.02, xanchor: "left" }, margin: { l: 55, r: 10, t: 36, b: 40 }, barmode: "group",
  legend: { orientation: "h", y: -0.18 }, yaxis: { title: { text: ytitle }, rangemode: "tozero", separatethousands: true },
  paper_bgcolor: "#fff", plot_bgcolor: "#fff", font: { size: 12 },
}, extra || {});
const CONFIG = { displayModeBar: false, responsive: true };

function pairBars(div, v, key, title, ytitle, pct) {
  const groups = v.baseline.groups.map((r) => r.group.replace(/_/g, "<br>"));
  const trace = (side, name, color) => ({
    type: "bar", name, x: groups, y: v[side].groups.map((r) => r[key]), marker: { color },
    hovertemplate: pct ? "%{x}: %{y:.2%}<extra>" + name + "</extra>" : "%{x}: %{y:.3g}<extra>" + name + "</extra>",
  });
  const top = Math.max(0, ...v.baseline.groups.map((r) => r[key]), ...v.changed.groups.map((r) => r[key]));
  const yaxis = { title: { text: ytitle }, rangemode: "tozero", tickformat: pct ? ".1%" : ",~g" };
  if (top === 0) Object.assign(yaxis, { range: [0, 1], tickvals: [0], ticktext: ["0 (none)"] });
  Plotly.react(div, [trace("baseline", "preset's policy", BASE), trace("changed", "changed", CHANGED)],
               layoutBase(title, ytitle, { yaxis }), CONFIG);
}

function speech(v) {
  const b = v.baseline.criticism, c = v.changed.criticism;
  $("speech-plots").hidden = !v.speech_behaviours.length;
  const names = v.speech_behaviours.length ? v.speech_behaviours.join(", ").replace(/_/g, " ") : "";
  $("speech-note").textContent = names
    ? `Political expression (${names}) actually done, per day, all citizens. Fewer events under the changed policy is chilling; ` +
      "identical curves mean people did not change how much they speak."
    : "This preset has no political expression among its behaviours, so there is no speech to chill.";
  Plotly.react("plot-speech", [
    { type: "scatter", mode: "lines", name: "preset's policy", x: b.day, y: b.criticism, line: { color: BASE, width: 5 }, opacity: 0.6 },
    { type: "scatter", mode: "lines", name: "changed", x: c.day, y: c.criticism, line: { color: CHANGED, width: 2 } },
  ], layoutBase("Criticism events per day", "events", { xaxis: { title: { text: "day" } } }), CONFIG);
  pairBars("plot-speech-groups", v, "criticism_per_1000", "Criticism per 1,000, whole run", "per 1,000", false);
}

function distributionPlot(v) {
  const g = $("dist-group").value || "all";
  const bars = (side, name, color) => {
    const d = v[side].distribution.groups[g] || { lo: [], hi: [], share: [], citizens: [] };
    // 10-point bins on a numeric axis (empty bins keep their place); the open-ended end bins sit at their edge
    const x = d.lo.map((lo, i) => (lo === null ? d.hi[i] - 4.5 : lo + 5));
    const text = d.lo.map((lo, i) => (lo === null ? `score ≤ ${d.hi[i]}` : d.hi[i] > 2e9 ? `score ≥ ${lo}` : `score ${lo}–${d.hi[i]}`));
    return { type: "bar", name, x, y: d.share, width: 4.5, offset: side === "baseline" ? -4.5 : 0, marker: { color },
             customdata: d.citizens, text, textposition: "none",
             hovertemplate: "%{text}: %{y:.2%} (%{customdata:,} citizens)<extra>" + name + "</extra>" };
  };
  Plotly.react("plot-distribution", [bars("baseline", "preset's policy", BASE), bars("changed", "changed", CHANGED)],
    layoutBase(`Share of ${g === "all" ? "all citizens" : g} by score (10-point bins, day ${v.changed.distribution.day})`,
               "share of citizens", { yaxis: { title: { text: "share of citizens" }, rangemode: "tozero", tickformat: ".0%" },
                                      xaxis: { title: { text: "score" }, zeroline: false } }), CONFIG);
}

function delta(a, b, pct, worse) {
  // worse: +1 when a rise harms people (sanctions), -1 when a fall does (speech), 0 when neither is implied
  const d = b - a;
  if (Math.abs(d) < 1e-12) return "";
  const s = pct ? (d > 0 ? "+" : "") + (100 * d).toFixed(2) + " pt" : (d > 0 ? "+" : "") + d.toPrecision(3);
  const cls = worse === 0 ? "" : (d * worse > 0 ? "worse" : "better");
  return ` <span class="${cls}">(${s})</span>`;
}

function groupTable(v) {
  const cols = [["penalties_per_1000", "penalties / 1,000", false, 1], ["wrongful_per_1000", "wrongful / 1,000", false, 1],
                ["restricted_share", "restricted (last day)", true, 1], ["criticism_per_1000", "criticism / 1,000", false, -1],
                ["mean_score", "mean score", false, 0]];
  let html = "<tr><th>group</th><th>citizens</th>" + cols.map((c) => `<th>${c[1]}</th>`).join("") + "</tr>";
  v.baseline.groups.forEach((b, i) => {
    const c = v.changed.groups[i];
    html += `<tr><td>${esc(b.group)}</td><td>${b.population.toLocaleString()}</td>` + cols.map(([k, , pct, worse]) => {
      const f = (x) => (pct ? (100 * x).toFixed(2) + " %" : x.toFixed(k === "mean_score" ? 1 : 2));
      return `<td>${f(b[k])} → ${f(c[k])}${delta(b[k], c[k], pct, worse)}</td>`;
    }).join("") + "</tr>";
  });
  $("group-table").innerHTML = html;
}

function flipsTable(v) {
  if (!v.flips.length) {
    $("flips").innerHTML = `<p>No verdict flips: the changed policy gets the same verdict on every principle ` +
      `(${v.changed.compliance.filter((r) => r.verdict === "fail").length} fail, ` +
      `${v.changed.compliance.filter((r) => r.verdict === "warn").length} warn).</p>`;
    return;
  }
  let html = "<table class='numbers' id='flips-table'><tr><th>principle</th><th>preset's policy</th><th>changed</th><th>why now</th></tr>";
  for (const f of v.flips) {
    html += `<tr><td>${esc(f.source)}: ${esc(f.principle)}</td><td><span class="verdict ${f.baseline}">${f.baseline}</span></td>` +
            `<td><span class="verdict ${f.changed}">${f.changed}</span></td><td style="text-align:left">${esc(f.cause_changed).replace(/\n/g, "<br>")}</td></tr>`;
  }
  $("flips").innerHTML = html + "</table>";
}

function render(v) {
  state.last = v;
  pairBars("plot-penalties", v, "penalties_per_1000", "Penalties per 1,000", "per 1,000", false);
  pairBars("plot-wrongful", v, "wrongful_per_1000", "Wrongful penalties per 1,000", "per 1,000", false);
  pairBars("plot-restricted", v, "restricted_share", "Restricted on the last day", "share", true);
  groupTable(v);
  speech(v);
  const sel = $("dist-group");
  if (sel.options.length !== v.groups.length + 1) {
    sel.innerHTML = ["all", ...v.groups].map((g) => `<option>${esc(g)}</option>`).join("");
  }
  distributionPlot(v);
  flipsTable(v);
  $("command").textContent = v.command_preview + "   (Save writes FILE.toml)";
  $("baseline-command").textContent = v.baseline_command;
  state.shown += 1;
  document.body.dataset.views = String(state.shown);
}

// ------------------------------------------------------------------ start

async function loadPreset(name) {
  state.preset = name;
  const info = await getJSON("/api/knobs?preset=" + encodeURIComponent(name));
  $("preset-description").textContent = info.description;
  $("population").value = info.defaults.population;
  $("days").value = info.defaults.days;
  $("seed").value = info.defaults.seed;
  $("save-out").value = `runs/lab-${name}-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, "")}`;
  buildKnobs(info);
  await refresh();
}

async function save() {
  setStatus("saving…", true);
  try {
    const r = await getJSON("/api/save", Object.assign(request(), { out: $("save-out").value }));
    showError(null);
    $("command").textContent = r.command;
    $("baseline-command").textContent = r.baseline_command;
    setStatus(`saved: ${r.out} (scenario: ${r.toml})`, false);
  } catch (e) {
    showError(e);
    setStatus("not saved: see the message above the plots", false);
  }
}

async function main() {
  const p = await getJSON("/api/presets");
  const sel = $("preset");
  sel.innerHTML = p.presets.map((x) => `<option value="${esc(x.name)}">${esc(x.name)}</option>`).join("");
  const wanted = new URLSearchParams(location.search).get("preset") || p.default;
  sel.value = wanted;
  sel.addEventListener("change", () => loadPreset(sel.value));
  ["population", "days", "seed"].forEach((id) => $(id).addEventListener("change", schedule));
  $("reset").addEventListener("click", () => loadPreset(state.preset));
  $("dist-group").addEventListener("change", () => state.last && distributionPlot(state.last));
  $("save").addEventListener("click", save);
  await loadPreset(sel.value);
}

main().catch((e) => { showError(e); setStatus("the lab could not start", false); });
