// mtst serve web page: reads the model's tasks from /info, runs /predict and /embed, draws the results.
// Plain DOM calls, no build step; user text is only ever set as textContent.
"use strict";

const EXAMPLE = [
  "Marie Curie was born in Warsaw and worked in Paris.",
  "Where is the Eiffel Tower located?",
  "I loved this film: the acting was wonderful.",
  "Apple shares fell sharply on Monday in New York.",
];
const PALETTE = [
  ["#e7f5ff", "#1c7ed6"], ["#ebfbee", "#37b24d"], ["#fff4e6", "#f76707"],
  ["#f3f0ff", "#7048e8"], ["#fff0f6", "#d6336c"], ["#e3fafc", "#1098ad"],
];

const $ = (id) => document.getElementById(id);
const state = { info: null, key: sessionStorage.getItem("mtst-api-key") || "", entityColors: {} };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") for (const [p, x] of Object.entries(v)) node.style.setProperty(p, x);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.type = body && body.error_type;
  }
}

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  const res = await fetch(path, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function entityType(tag) {
  return tag.replace(/^[BIES]-/, "");
}

function entityColor(label) {
  if (!(label in state.entityColors)) {
    const n = Object.keys(state.entityColors).length;
    state.entityColors[label] = PALETTE[n % PALETTE.length];
  }
  return state.entityColors[label];
}

// ------------------------------------------------------------------ status and model card
async function pollHealth() {
  const dot = $("status-dot"), text = $("status-text");
  try {
    const res = await fetch("/health");
    const ok = res.ok;
    dot.className = "dot " + (ok ? "ok" : "wait");
    text.textContent = ok ? "ready" : ((await res.json().catch(() => ({}))).error || "loading");
    if (ok && !state.info) await loadInfo();
  } catch (e) {
    dot.className = "dot bad";
    text.textContent = "server unreachable";
  }
  setTimeout(pollHealth, state.info ? 10000 : 1500);
}

async function loadInfo() {
  try {
    state.info = await api("/info");
    $("key-card").hidden = true;
  } catch (e) {
    if (e.status === 401) {
      $("key-card").hidden = false;
      showError("This server needs an API key: enter it on the right.");
    }
    return;
  }
  renderInfo(state.info);
}

function renderInfo(info) {
  const facts = $("model-facts");
  facts.replaceChildren();
  const rows = [
    ["model", info.model], ["backend", `${info.backend} · ${info.device}`], ["dimensions", info.dim],
    ["pooling", `${info.pooling}${info.normalize ? " · normalized" : ""}`], ["max length", `${info.max_length} tokens`],
    ["batch", `${info.limits.max_client_batch} texts per request`],
  ];
  for (const [k, v] of rows) facts.append(el("dt", {}, k), el("dd", {}, v));

  const box = $("tasks");
  box.replaceChildren();
  if (!info.tasks.length) {
    box.append(el("span", { class: "hint" }, "No task heads: this model serves embeddings and similarity."));
  }
  for (const t of info.tasks) {
    const chips = el("div", { class: "chips" });
    if (t.type === "token_classification") {
      const types = [...new Set(t.labels.filter((l) => l !== "O").map(entityType))];
      for (const ty of types) {
        const [bg, line] = entityColor(ty);
        chips.append(el("span", { class: "chip ent", style: { "--ent-bg": bg, "--ent-line": line } }, ty));
      }
    } else if (t.labels) {
      for (const l of t.labels) chips.append(el("span", { class: "chip" }, l));
    } else {
      chips.append(el("span", { class: "chip" }, "score"));
    }
    box.append(el("div", { class: "task" },
      el("div", { class: "task-head" }, t.name, el("span", { class: "task-type" }, t.type.replace("_", " "))), chips));
  }
}

// ------------------------------------------------------------------ results
function highlighted(text, entities) {
  const out = el("span", { class: "text" });
  let at = 0;
  for (const e of [...entities].sort((a, b) => a.start - b.start)) {
    if (e.start < at) continue; // overlapping spans: keep the first
    out.append(text.slice(at, e.start));
    const [bg, line] = entityColor(e.label);
    out.append(el("mark", {
      class: "ent", "data-label": e.label, title: `${e.label} · ${(e.score * 100).toFixed(0)}%`,
      style: { "--ent-bg": bg, "--ent-line": line },
    }, text.slice(e.start, e.end), el("span", { class: "ent-label" }, e.label)));
    at = e.end;
  }
  out.append(text.slice(at));
  return out;
}

function predChip(name, pred) {
  const score = typeof pred.score === "number" ? pred.score : null;
  const bar = el("span", { class: "bar" }, el("span", { style: { width: `${Math.round((score || 0) * 100)}%` } }));
  if ("label" in pred) {
    return el("span", { class: "pred", "data-task": name },
      el("span", { class: "task-name" }, name), el("span", { class: "task-label" }, pred.label), bar,
      el("span", { class: "score" }, `${(score * 100).toFixed(0)}%`));
  }
  return el("span", { class: "pred", "data-task": name },
    el("span", { class: "task-name" }, name), el("span", { class: "task-label" }, score.toFixed(3)), bar);
}

function renderSentences(texts, predictions, truncated) {
  const box = $("results");
  box.replaceChildren();
  texts.forEach((text, i) => {
    const pred = predictions ? predictions[i] : {};
    const entities = Object.values(pred).filter(Array.isArray).flat();
    const head = el("div", {}, el("span", { class: "idx" }, i + 1), highlighted(text, entities));
    if (truncated && truncated[i]) head.append(el("span", { class: "truncated" }, "truncated to max length"));
    const chips = el("div", { class: "preds" });
    for (const [name, p] of Object.entries(pred)) {
      if (!Array.isArray(p)) chips.append(predChip(name, p));
      else if (!p.length) chips.append(el("span", { class: "pred none" }, el("span", { class: "task-name" }, name), "no entities"));
    }
    box.append(el("div", { class: "card sentence" }, head, chips));
  });
}

function heatColor(v) {
  const t = Math.max(0, Math.min(1, v)); // cosine below 0 shows as 0
  const light = [237, 242, 255], dark = [54, 79, 199];
  const c = light.map((l, k) => Math.round(l + (dark[k] - l) * t));
  return { background: `rgb(${c.join(",")})`, color: t > 0.55 ? "#fff" : "#1d2330" };
}

function renderHeatmap(texts, vectors) {
  const card = $("heatmap-card"), box = $("heatmap");
  box.replaceChildren();
  if (texts.length < 2) { card.hidden = true; return; }
  const head = el("tr", {}, el("th", {}));
  texts.forEach((_, j) => head.append(el("th", {}, j + 1)));
  const table = el("table", {}, head);
  vectors.forEach((a, i) => {
    const row = el("tr", {}, el("th", {}, i + 1));
    vectors.forEach((b) => {
      const v = a.reduce((s, x, k) => s + x * b[k], 0);
      row.append(el("td", { style: heatColor(v), title: v.toFixed(4) }, v.toFixed(2)));
    });
    table.append(row);
  });
  const key = el("div", { class: "key" });
  texts.forEach((t, i) => key.append(el("span", {}, `${i + 1}. ${t}`)));
  box.append(table, key);
  card.hidden = false;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function run() {
  const texts = $("texts").value.split("\n").map((t) => t.trim()).filter(Boolean);
  if (!texts.length) { showError("Type at least one sentence."); return; }
  if (!state.info) await loadInfo();
  if (!state.info) return;
  const button = $("run");
  button.disabled = true;
  showError("");
  const start = performance.now();
  try {
    const hasTasks = state.info.tasks.length > 0;
    const [pred, vectors] = await Promise.all([
      hasTasks ? api("/predict", { inputs: texts }) : Promise.resolve(null),
      api("/embed", { inputs: texts, normalize: true }),
    ]);
    renderSentences(texts, pred && pred.predictions, pred && pred.truncated);
    renderHeatmap(texts, vectors);
    const ms = Math.round(performance.now() - start);
    $("run-meta").textContent = `${texts.length} sentence${texts.length > 1 ? "s" : ""} · ${ms} ms`;
  } catch (e) {
    if (e.status === 401) $("key-card").hidden = false;
    showError(e.message);
  } finally {
    button.disabled = false;
  }
}

$("run").addEventListener("click", run);
$("texts").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(); });
$("example").addEventListener("click", () => { $("texts").value = EXAMPLE.join("\n"); run(); });
$("save-key").addEventListener("click", () => {
  state.key = $("api-key").value.trim();
  sessionStorage.setItem("mtst-api-key", state.key);
  showError("");
  loadInfo();
});
pollHealth();
