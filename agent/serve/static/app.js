// The batchflow page: plain JavaScript, no library, nothing fetched but the API.
// It follows one run's deltas (docs/serve.md) over a streamed fetch (EventSource
// cannot send the bearer token), keeps every object by id, and draws the process
// tree as a virtual list: only the rows in view exist in the DOM, so ten
// thousand processes scroll as easily as ten.
"use strict";

const ROW_H = 22;
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || "";
history.replaceState(null, "", location.pathname + (params.get("run") ? "?run=" + params.get("run") : ""));
const HEADERS = { Authorization: "Bearer " + TOKEN };
const CLIENT = (sessionStorage.getItem("bf-client") ||
  (() => { const c = Math.random().toString(36).slice(2) + Date.now().toString(36);
           sessionStorage.setItem("bf-client", c); return c; })());

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

let S = null;          // the state of the run shown

function freshState(runId) {
  return { runId, until: 0, objects: new Map(), procs: new Map(), links: new Map(),
           children: new Map(), roots: [], collapsed: new Set(), selected: null,
           rows: [], treeDirty: true, minNs: Infinity, maxNs: 0, live: true, ended: false,
           runNode: null, updates: 0, generation: 0 };
}

// ---- data -------------------------------------------------------------------

function apply(delta) {
  for (const fresh of delta.nodes || []) {
    // updated in place: the tree keeps references to its process objects
    const old = S.objects.get(fresh.id);
    if (old && old.type === "Process" && old.parent !== fresh.parent) S.treeDirty = true;
    const n = old ? Object.assign(old, fresh) : fresh;
    S.objects.set(n.id, n);
    if (n.type === "Process") {
      if (!old) S.treeDirty = true;
      S.procs.set(n.id, n);
      seeNs(n.startNs); seeNs(n.endNs);
    } else if (n.type === "Run") {
      S.runNode = n;
      seeNs(n.startNs); seeNs(n.endNs);
    }
  }
  for (const fresh of delta.links || []) {
    const old = S.objects.get(fresh.id);
    const l = old ? Object.assign(old, fresh) : fresh;
    S.objects.set(l.id, l);
    if (l.type === "Access") {
      let set = S.links.get(l.source);
      if (!set) S.links.set(l.source, set = new Set());
      set.add(l.id);
      seeNs(l.lastNs);
    }
  }
  for (const id of delta.deleted || []) {
    const o = S.objects.get(id);
    if (o) o.deleted = true;
  }
  if (delta.until > S.until) S.until = delta.until;
  S.updates++;
  schedule();
}

function seeNs(ns) {
  if (ns == null) return;
  if (ns < S.minNs) S.minNs = ns;
  if (ns > S.maxNs) S.maxNs = ns;
}

function rebuildTree() {
  S.children = new Map();
  S.roots = [];
  for (const p of S.procs.values()) {
    if (p.parent && S.procs.has(p.parent)) {
      let c = S.children.get(p.parent);
      if (!c) S.children.set(p.parent, c = []);
      c.push(p);
    } else {
      S.roots.push(p);
    }
  }
  const byStart = (a, b) => (a.startNs - b.startNs) || (a.pid - b.pid);
  S.roots.sort(byStart);
  for (const c of S.children.values()) c.sort(byStart);
  S.treeDirty = false;
}

function procLabel(p) {
  return p.command || p.comm || "?";
}

function matchSet(q) {
  // processes matching the search (command or a file path), or null when no search
  if (!q) return null;
  const hits = new Set();
  for (const p of S.procs.values()) {
    if (procLabel(p).toLowerCase().includes(q) || String(p.pid) === q) { hits.add(p.id); continue; }
    const ls = S.links.get(p.id);
    if (!ls) continue;
    for (const lid of ls) {
      const f = S.objects.get(S.objects.get(lid).target);
      if (f && f.path && f.path.toLowerCase().includes(q)) { hits.add(p.id); break; }
    }
  }
  return hits;
}

function flatten() {
  if (S.treeDirty) rebuildTree();
  const q = $("search").value.trim().toLowerCase();
  const hits = matchSet(q);
  let keep = null;
  if (hits) {            // matches and their ancestors
    keep = new Set();
    for (const id of hits) {
      let p = S.procs.get(id);
      while (p && !keep.has(p.id)) { keep.add(p.id); p = S.procs.get(p.parent); }
    }
  }
  const rows = [];
  const stack = S.roots.slice().reverse().map((p) => [p, 0]);
  while (stack.length) {
    const [p, depth] = stack.pop();
    if (keep && !keep.has(p.id)) continue;
    rows.push({ p, depth, hit: hits ? hits.has(p.id) : false });
    const kids = S.children.get(p.id);
    if (kids && (!S.collapsed.has(p.id) || keep)) {
      for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1]);
    }
  }
  S.rows = rows;
  $("matches").textContent = hits ? `${hits.size} match${hits.size === 1 ? "" : "es"}` : "";
}

// ---- drawing ----------------------------------------------------------------

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; draw(); });
}

function fmtDur(ns) {
  if (ns == null || ns < 0) return "";
  if (ns < 1e6) return (ns / 1e3).toFixed(0) + " µs";
  if (ns < 1e9) return (ns / 1e6).toFixed(ns < 1e7 ? 1 : 0) + " ms";
  if (ns < 60e9) return (ns / 1e9).toFixed(2) + " s";
  return Math.floor(ns / 60e9) + " min " + ((ns % 60e9) / 1e9).toFixed(0) + " s";
}

function exitCell(p) {
  if (p.signalName) return `<span class="sig">${esc(p.signalName)}</span>`;
  if (p.exitCode != null) return p.exitCode === 0 ? "0" : `<span class="fail">${p.exitCode}</span>`;
  if (!p.deleted && S.live) return `<span class="run">running</span>`;
  return "?";
}

function draw() {
  flatten();
  drawRows();
  drawRun();
  if (S.selected) drawDetail(S.selected);
  const files = [...S.objects.values()].filter((o) => o.type === "File" || o.type === "UnresolvedPath").length;
  const st = $("status");
  st.textContent = `revision ${S.until} · ${S.procs.size} processes · ${files} files · ` +
    `${S.rows.length} rows shown · ${S.ended ? "finished" : S.live ? "following live" : "loaded"}`;
  st.dataset.until = S.until;
  st.dataset.processes = S.procs.size;
}

function drawRows() {
  const tree = $("tree");
  const spacer = $("spacer");
  spacer.style.height = (S.rows.length * ROW_H) + "px";
  const first = Math.max(0, Math.floor(tree.scrollTop / ROW_H) - 5);
  const last = Math.min(S.rows.length, first + Math.ceil(tree.clientHeight / ROW_H) + 10);
  const span = Math.max(1, S.maxNs - S.minNs);
  const html = [];
  for (let i = first; i < last; i++) {
    const { p, depth, hit } = S.rows[i];
    const kids = S.children.get(p.id);
    const tog = kids ? (S.collapsed.has(p.id) ? "▸" : "▾") : "";
    const end = p.endNs != null ? p.endNs : S.maxNs;
    const left = ((p.startNs - S.minNs) / span) * 100;
    const width = Math.max(0.2, ((end - p.startNs) / span) * 100);
    const cls = p.endNs == null ? "running" : (p.exitCode || p.signalName) ? "failed" : "";
    html.push(
      `<div class="row${p.id === S.selected ? " sel" : ""}${hit ? " match" : ""}" ` +
      `style="top:${i * ROW_H}px" data-id="${esc(p.id)}" data-pid="${p.pid}">` +
      `<span class="c-cmd" style="padding-left:${depth * 14}px"><span class="tog">${tog}</span>` +
      `<span class="pid">${p.pid}</span><span class="name">${esc(procLabel(p))}</span>` +
      (kids && S.collapsed.has(p.id) ? ` <span class="count">(${kids.length} children)</span>` : "") +
      `</span><span class="c-exit">${exitCell(p)}</span>` +
      `<span class="c-dur">${p.endNs != null ? fmtDur(p.endNs - p.startNs) : ""}</span>` +
      `<span class="c-time"><span class="bar ${cls}" style="left:${left}%;width:${width}%"></span></span></div>`);
  }
  spacer.innerHTML = html.join("");
}

function drawRun() {
  const r = S.runNode;
  if (!r) return;
  const state = $("state");
  state.textContent = S.live ? "live" : "finished";
  state.className = "badge " + (S.live ? "live" : "ended");
  const counts = Object.entries(r.counts || {}).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(", ");
  const losses = Object.entries(r.losses || {}).filter(([, v]) => v);
  let html = `<span class="cmd">${esc(r.commandLine || "")}</span> on ${esc(r.host)} · ` +
    `${r.processCount} processes · ${r.eventCount ?? 0} events (${esc(counts)})`;
  if (r.exitStatus != null) html += ` · exit status ${r.exitStatus}`;
  if (r.lostEvents) {
    html += ` · <span class="loss" id="losses">lost ${r.lostEvents} events: ` +
      losses.map(([k, v]) => `${esc(k)} ${v}`).join(", ") + `</span>`;
    if ((r.lossWindows || []).length) {
      html += ` <span class="count">(${r.lossWindows.map((w) =>
        `${esc(w.kind)} ${w.count} from ${esc(w.fromTime)} to ${esc(w.toTime)}`).join("; ")})</span>`;
    }
  } else {
    html += ` · <span class="ok" id="losses">no event lost</span>`;
  }
  if (r.complete === false) html += ` · <span class="loss">incomplete</span>`;
  else if (r.complete === true) html += ` · <span class="ok">complete</span>`;
  const missing = (r.protocol || []).filter((m) => m.type === "MissingEvent");
  if (missing.length) {
    html += ` · <span class="notes">missing-event statements: ` + missing.map((m) =>
      `${esc(m.missingReason)}${m.affectedEvents != null ? " (" + m.affectedEvents + ")" : ""}`).join(", ") + `</span>`;
  }
  if ((r.missingTracepoints || []).length) html += ` · <span class="notes">tracepoints missing: ${esc(r.missingTracepoints.join(", "))}</span>`;
  for (const n of r.notes || []) html += `<div class="notes">${esc(n)}</div>`;
  $("run").innerHTML = html;
}

const GROUPS = [["write", "written"], ["read", "read"], ["exec", "executed"], ["stat", "stat'ed"],
                ["chdir", "chdir"], ["missing", "missing or failed"]];

function drawDetail(id) {
  const p = S.procs.get(id);
  if (!p) return;
  const groups = {};
  for (const lid of S.links.get(id) || []) {
    const l = S.objects.get(lid);
    const g = l.failures === l.count ? "missing" : l.group;
    (groups[g] = groups[g] || []).push(l);
  }
  const counts = Object.entries(p.counts || {}).map(([k, v]) => `${k} ${v}`).join(", ");
  const parent = p.parent && S.procs.get(p.parent);
  let html = `<h3>${esc(procLabel(p))}</h3><div>pid ${p.pid}` +
    (parent ? ` · parent <a href="#" data-go="${esc(parent.id)}">${parent.pid} ${esc(parent.comm)}</a>` : "") +
    ` · exit ${exitCell(p)} · ${esc(p.startTime)} → ${esc(p.endTime || "")} ` +
    `(${fmtDur(p.endNs != null ? p.endNs - p.startNs : null)})</div>` +
    `<div class="count">${esc(counts)}</div><div class="count">${esc(p.id)}</div><div id="files">`;
  for (const [g, title] of GROUPS) {
    const ls = groups[g];
    if (!ls) continue;
    ls.sort((a, b) => (S.objects.get(a.target)?.path || "").localeCompare(S.objects.get(b.target)?.path || ""));
    html += `<h4 data-group="${g}">${title} (${ls.length})</h4><ul>` + ls.map((l) => {
      const f = S.objects.get(l.target);
      const extra = (l.count > 1 ? ` ×${l.count}` : "") +
        (l.failures ? ` <span class="fail">${l.failures} failed ${esc(l.errnos.join(" "))}</span>` : "");
      const name = !f ? l.target : f.path ? f.path :
        `(empty path${f.relativeTo ? ", relative to " + f.relativeTo : ""})`;
      return `<li>${esc(name)}<span class="count">${extra}</span></li>`;
    }).join("") + `</ul>`;
  }
  html += `</div>`;
  $("detail").innerHTML = html;
}

// ---- events -------------------------------------------------------------------

$("tree").addEventListener("scroll", () => drawRows());
$("tree").addEventListener("click", (e) => {
  const row = e.target.closest(".row");
  if (!row) return;
  const id = row.dataset.id;
  if (e.target.classList.contains("tog") && S.children.has(id)) {
    if (S.collapsed.has(id)) S.collapsed.delete(id); else S.collapsed.add(id);
  } else {
    S.selected = id;
  }
  draw();
});
$("detail").addEventListener("click", (e) => {
  const go = e.target.dataset.go;
  if (go) { e.preventDefault(); S.selected = go; draw(); }
});
let searchTimer = null;
$("search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { $("tree").scrollTop = 0; draw(); }, 150);
});
$("runs").addEventListener("change", () => show($("runs").value));

// ---- network -------------------------------------------------------------------

async function getJSON(url) {
  const resp = await fetch(url, { headers: HEADERS });
  if (!resp.ok) throw new Error(`${url}: ${resp.status} ${(await resp.json().catch(() => ({}))).error || ""}`);
  return resp.json();
}

async function follow(state) {
  // Server-Sent Events read from a fetch body; reconnects with the revision held.
  while (S === state && !state.ended) {
    try {
      const url = `/api/runs/${state.runId}/stream?client=${CLIENT}-${state.runId}&since=${state.until}`;
      const resp = await fetch(url, { headers: HEADERS });
      if (!resp.ok) throw new Error(`stream: ${resp.status}`);
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done || S !== state) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let name = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (!data) continue;
          const msg = JSON.parse(data);
          if (name === "delta") apply(msg);
          else if (name === "resync") apply(await getJSON(`/api/runs/${state.runId}/graph?since=${msg.since}`));
          else if (name === "end") {
            state.ended = true; state.live = false; schedule();
            const opt = [...$("runs").options].find((o) => o.value === state.runId);
            if (opt) opt.textContent = opt.textContent.replace(" (live)", "");
          }
        }
      }
    } catch (err) {
      $("status").textContent = "connection lost, retrying: " + err.message;
    }
    if (!state.ended) await new Promise((r) => setTimeout(r, 1000));
  }
}

async function show(runId) {
  S = freshState(runId);
  $("detail").innerHTML = '<p class="hint">Click a process to see its files.</p>';
  const run = RUNS.find((r) => r.id === runId);
  S.live = run ? run.live : true;
  follow(S);
}

let RUNS = [];

function listRuns() {
  // the run shown stays listed even once the server has forgotten it
  const shown = S && !RUNS.some((r) => r.id === S.runId) ? [{ id: S.runId, name: "(no longer served)" }] : [];
  $("runs").innerHTML = RUNS.concat(shown).map((r) =>
    `<option value="${esc(r.id)}">${esc(r.id)}: ${esc(r.name)}${r.live ? " (live)" : ""}</option>`).join("");
  if (S) $("runs").value = S.runId;
}

async function refreshRuns() {
  // Runs come and go while the page is open (the agent's recordings): the list is
  // re-read, and a page showing nothing yet shows the first run that appears.
  let fresh;
  try { fresh = (await getJSON("/api/runs")).runs; } catch (err) { return; }
  const key = (rs) => rs.map((r) => `${r.id}/${r.live}`).join(" ");
  if (key(fresh) === key(RUNS)) return;
  RUNS = fresh;
  listRuns();
  if (!S && RUNS.length) {
    const id = (RUNS.find((r) => r.live) || RUNS[0]).id;
    show(id);
    $("runs").value = id;
  }
}

(async function main() {
  try {
    RUNS = (await getJSON("/api/runs")).runs;
  } catch (err) {
    document.body.innerHTML = `<p style="padding:20px">batchflow: ${esc(err.message)} ` +
      `(open the URL the server printed: it carries the token)</p>`;
    return;
  }
  listRuns();
  const want = params.get("run") && RUNS.some((r) => r.id === params.get("run")) ? params.get("run") : RUNS[0]?.id;
  if (want) { $("runs").value = want; show(want); }
  else $("status").textContent = "no recording yet: the agent's recordings appear here as they start";
  setInterval(refreshRuns, 2000);
})();
