// Drover console: live updates of the server-rendered pages over
// Server-Sent Events (/ui/live). Plain JavaScript, no build step.
"use strict";
(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const SVG = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, text) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const terminal = (s) => s === "finished" || s === "failed" || s === "canceled";
  const clock = (t) => new Date(t).toISOString().slice(11, 23);

  function setLive(text) {
    const s = $("#live-status");
    if (s) s.textContent = text;
  }

  // connect opens a stream; the browser reconnects by itself after a
  // drop or when the server ends a stream (each lasts at most 30 min).
  function connect(url, handlers) {
    const es = new EventSource(url);
    es.onopen = () => setLive("connected");
    es.onerror = () => setLive(es.readyState === EventSource.CLOSED ? "stopped; reload the page" : "reconnecting…");
    es.addEventListener("resync", () => setLive("catching up…"));
    for (const [name, fn] of Object.entries(handlers)) {
      es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
    }
    window.addEventListener("pagehide", () => es.close());
    return es;
  }

  function stateBadge(state) {
    return el("span", { class: "state st-" + state }, state);
  }

  function progressNode(p) {
    const span = el("span");
    if (!p) {
      span.append(el("span", { class: "muted" }, "no progress reported"));
      return span;
    }
    const pct = Math.round(100 * p.fraction) + " %";
    const bar = el("progress", { max: "1", value: String(p.fraction), "aria-label": "progress" }, pct);
    span.append(bar, " ", el("span", { class: "pct", title: p.done + " of " + p.total }, pct));
    return span;
  }

  function setField(root, name, node) {
    const f = root.querySelector('[data-f="' + name + '"]');
    if (!f) return;
    if (typeof node === "string") {
      if (f.textContent !== node) f.textContent = node;
    } else {
      f.replaceChildren(node);
    }
  }

  function fillRow(root, row) {
    setField(root, "state", stateBadge(row.state));
    setField(root, "node", row.node || "none");
    setField(root, "epoch", String(row.epoch));
    setField(root, "restarts", String(row.restarts));
    setField(root, "progress", progressNode(row.progress));
  }

  // Jobs page ---------------------------------------------------------------
  const jobsTable = $("#jobs[data-live-jobs]");
  if (jobsTable) {
    const fresh = [];
    connect("/ui/live?jobs=" + encodeURIComponent(jobsTable.dataset.liveJobs), {
      row: (row) => {
        const tr = jobsTable.querySelector('tr[data-id="' + CSS.escape(row.id) + '"]');
        if (tr) fillRow(tr, row);
      },
      newjob: (j) => {
        fresh.push(j.id);
        const note = $("#newjobs");
        note.hidden = false;
        note.replaceChildren(fresh.length + " job(s) submitted since this page was loaded: ");
        for (const id of fresh.slice(-5)) {
          note.append(el("a", { href: "/ui/jobs/" + encodeURIComponent(id) }, id), " ");
        }
        note.append(el("a", { href: location.href }, "reload"));
      },
    });
  }

  // Nodes page --------------------------------------------------------------
  const nodesTable = $("#nodes[data-live-nodes]");
  if (nodesTable) {
    const age = (t, now) => {
      const s = Math.max(0, (Date.parse(now) - Date.parse(t)) / 1000);
      if (s < 60) return Math.floor(s) + "s";
      if (s < 3600) return Math.floor(s / 60) + "m";
      if (s < 172800) return Math.floor(s / 3600) + "h";
      return Math.floor(s / 86400) + "d";
    };
    connect("/ui/live?nodes=1", {
      nodes: (msg) => {
        const body = el("tbody");
        for (const n of msg.nodes) {
          const tr = el("tr");
          const labels = el("td");
          const ls = Object.entries(n.labels || {});
          if (ls.length === 0) labels.textContent = "none";
          for (const [k, v] of ls) labels.append(el("code", {}, k + "=" + v), " ");
          const load = el("td");
          load.append(el("meter", { min: "0", max: String(n.capacity), value: String(n.load), "aria-label": "load" }),
            " " + n.load + " of " + n.capacity);
          const jobs = el("td");
          for (const id of n.jobs || []) jobs.append(el("a", { href: "/ui/jobs/" + encodeURIComponent(id) }, id), " ");
          if (!(n.jobs || []).length) jobs.textContent = n.kind === "jobmaster" ? "none" : "-";
          tr.append(el("td", {}, n.id), el("td", {}, n.kind), labels, load,
            el("td", {}, (n.types || []).join(" ")), el("td", {}, age(n.started_at, msg.now)), jobs);
          body.append(tr);
        }
        if (!msg.nodes.length) {
          const tr = el("tr");
          tr.append(el("td", { colspan: "7" }, "No live nodes."));
          body.append(tr);
        }
        nodesTable.tBodies[0].replaceWith(body);
      },
    });
  }

  // Job page ----------------------------------------------------------------
  const jobBox = $("#job[data-job]");
  if (jobBox) jobPage(jobBox);

  function jobPage(box) {
    const id = box.dataset.job;
    const letters = { online: "O", created: "C", finished: "F", failed: "X", lost: "L", canceled: "K" };
    let events = [];
    const seen = new Set();
    let workers = {};
    let row = null;
    let now = Date.now();
    let skew = 0; // server clock minus ours
    const created = Date.parse(box.dataset.created);
    const grid = $("#grid");
    const cells = new Map();

    const evKey = (e) => [e.time, e.kind, e.epoch, e.state || "", e.worker || "", e.worker_epoch || 0].join("|");
    function addEvent(e) {
      const k = evKey(e);
      if (seen.has(k)) return false;
      seen.add(k);
      events.push(e);
      return true;
    }

    function cellClass(w) {
      return "cell s-" + (letters[w.s] ? w.s : "other");
    }
    function cellTitle(wid, w) {
      let t = wid + " · " + w.s + " · node " + (w.n || "none") + " · epoch " + w.e;
      if (w.t) t += " · " + w.d + "/" + w.t;
      return t;
    }
    // Cells carry only a class (and a letter when they are big enough to
    // show it); the node, epoch and progress go into the title on hover, so
    // 10,000 cells cost 10,000 small elements and nothing more.
    const cellID = new WeakMap();
    const byNumber = new Intl.Collator(undefined, { numeric: true }).compare; // w2 before w10
    let big = false;
    function paint(c, w) {
      c.className = cellClass(w);
      if (!big) c.textContent = letters[w.s] || "?";
    }
    function newCell(wid) {
      const c = document.createElement("span");
      cellID.set(c, wid);
      cells.set(wid, c);
      return c;
    }
    function setCell(wid, w) {
      let c = cells.get(wid);
      if (!c) {
        c = newCell(wid);
        grid.append(c);
      }
      paint(c, w);
    }
    grid.addEventListener("mouseover", (e) => {
      const wid = cellID.get(e.target);
      if (wid !== undefined && workers[wid]) e.target.title = cellTitle(wid, workers[wid]);
    });
    function renderGrid(full) {
      const ids = Object.keys(workers);
      if (full) {
        big = ids.length > 2000;
        grid.classList.toggle("big", big);
        ids.sort(byNumber);
        cells.clear();
        const frag = document.createDocumentFragment();
        for (const wid of ids) {
          const c = newCell(wid);
          paint(c, workers[wid]);
          frag.append(c);
        }
        grid.replaceChildren(frag);
      }
      const counts = {};
      for (const wid of ids) counts[workers[wid].s] = (counts[workers[wid].s] || 0) + 1;
      const parts = Object.entries(counts).sort().map(([s, n]) => n + " " + s);
      $("#worker-summary").textContent = ids.length + " worker(s)" + (parts.length ? ": " + parts.join(", ") : "");
    }

    $("#worker-find").addEventListener("submit", (e) => {
      e.preventDefault();
      const q = $("#worker-q").value.trim();
      const w = workers[q];
      $("#worker-info").textContent = w ? cellTitle(q, w) : "no worker " + q;
    });

    function renderSummary(j) {
      fillRow(box, row);
      const err = j && j.error ? j.error.code + ": " + j.error.message : "none";
      setField(box, "error", err);
      if (j) $("#detail").textContent = j.detail ? JSON.stringify(j.detail, null, 2) : "none yet";
      if (terminal(row.state)) {
        const f = $("#cancel-form");
        if (f) f.remove();
      }
    }

    function renderEventsTable() {
      const body = el("tbody");
      const last = events.slice(-500).reverse();
      for (const e of last) {
        const what = e.kind === "master_moved" ? "master moved" : e.kind.replace("_", " ");
        const tr = el("tr");
        body.append(tr);
        for (const v of [clock(e.time), what, e.state || "", String(e.epoch), e.node || "", e.worker ? e.worker + " (epoch " + e.worker_epoch + ")" : "", e.reason || ""]) {
          tr.append(el("td", {}, v));
        }
      }
      $("#events").tBodies[0].replaceWith(body);
      $("#event-count").textContent = String(events.length);
    }

    // The timeline: lanes of states, master incarnations and worker
    // events over the job's life, with each master move marked.
    function renderTimeline() {
      const tl = $("#timeline");
      const X0 = 80, X1 = 985;
      const sorted = events.slice().sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
      const t0 = Math.min(created || Infinity, sorted.length ? Date.parse(sorted[0].time) : Infinity, now);
      const last = sorted.length ? Date.parse(sorted[sorted.length - 1].time) : t0;
      const end = row && terminal(row.state) ? Math.max(last, t0 + 1) : Math.max(now + skew, last, t0 + 1);
      const x = (t) => X0 + ((t - t0) / (end - t0)) * (X1 - X0);
      const nodes = [];
      nodes.push(svg("text", { x: 4, y: 44, class: "lane" }, "State"), svg("text", { x: 4, y: 99, class: "lane" }, "Master"),
        svg("text", { x: 4, y: 150, class: "lane" }, "Workers"));

      const segs = (items, y, h, cls, label) => {
        items.forEach((it, i) => {
          const a = x(it.t), b = i + 1 < items.length ? x(items[i + 1].t) : x(end);
          const g = svg("g");
          g.append(svg("rect", { x: a, y: y, width: Math.max(b - a, 1.5), height: h, class: cls(it) }));
          g.append(svg("title", {}, label(it) + " from " + clock(it.t)));
          if (b - a > 60) g.append(svg("text", { x: a + 4, y: y + h / 2 + 4, class: "seg-label" }, label(it)));
          nodes.push(g);
        });
      };
      // States.
      const states = [];
      for (const e of sorted) {
        if (e.kind === "state" && e.state && (!states.length || states[states.length - 1].state !== e.state)) {
          states.push({ t: Date.parse(e.time), state: e.state, reason: e.reason });
        }
      }
      segs(states, 30, 22, (s) => "f-" + s.state, (s) => s.state + (s.reason ? " (" + s.reason + ")" : ""));
      // Master incarnations: a new segment at each new epoch; none while
      // the job waits for a node or once it has ended.
      const masters = [];
      const moves = [];
      for (const e of sorted) {
        const t = Date.parse(e.time);
        const cur = masters.length ? masters[masters.length - 1] : null;
        if (e.kind === "state" && (e.state === "pending" || terminal(e.state))) {
          if (cur && !cur.gap) masters.push({ t, gap: true });
          continue;
        }
        if (!e.epoch || (e.kind !== "state" && e.kind !== "master_moved" && e.kind !== "master_ready")) continue;
        if (!cur || cur.gap || cur.epoch !== e.epoch) {
          masters.push({ t, epoch: e.epoch, node: e.node });
          if (e.kind === "master_moved") moves.push({ t, epoch: e.epoch, node: e.node, reason: e.reason });
        }
      }
      segs(masters.filter((m, i) => !m.gap || i > 0), 85, 22, (m) => (m.gap ? "f-gap" : "f-master e" + (m.epoch % 4)),
        (m) => (m.gap ? "no master" : "epoch " + m.epoch + " · " + (m.node || "?")));
      // Workers online (up) and offline (down), in bins.
      const BINS = 180;
      const on = new Array(BINS).fill(0), off = new Array(BINS).fill(0);
      for (const e of sorted) {
        if (e.kind !== "worker_online" && e.kind !== "worker_offline") continue;
        const b = Math.min(BINS - 1, Math.floor(((Date.parse(e.time) - t0) / (end - t0)) * BINS));
        (e.kind === "worker_online" ? on : off)[b]++;
      }
      const peak = Math.max(1, ...on, ...off);
      for (let b = 0; b < BINS; b++) {
        const cx = X0 + ((b + 0.5) / BINS) * (X1 - X0);
        for (const [n, dir, cls] of [[on[b], -1, "tick-on"], [off[b], 1, "tick-off"]]) {
          if (!n) continue;
          const h = 3 + 17 * (Math.log(1 + n) / Math.log(1 + peak));
          const line = svg("line", { x1: cx, x2: cx, y1: 146, y2: 146 + dir * h, class: cls, "stroke-width": 3 });
          line.append(svg("title", {}, n + " worker(s) " + (dir < 0 ? "online" : "offline")));
          nodes.push(line);
        }
      }
      const totOn = on.reduce((a, b) => a + b, 0), totOff = off.reduce((a, b) => a + b, 0);
      nodes.push(svg("text", { x: 4, y: 164, class: "axis" }, "↑" + totOn + " on ↓" + totOff + " off"));
      // Master moves, over every lane, with their reason and new epoch.
      moves.forEach((m, i) => {
        const mx = x(m.t);
        nodes.push(svg("line", { x1: mx, x2: mx, y1: 22, y2: 170, class: "move" }));
        const right = mx > 700;
        const label = svg("text", { x: right ? mx - 4 : mx + 4, y: 78 - (i % 2) * 0, class: "move-label", "text-anchor": right ? "end" : "start" },
          "master moved (" + (m.reason || "?") + ") → epoch " + m.epoch + (m.node ? " on " + m.node : ""));
        nodes.push(label);
      });
      // Time axis.
      for (let k = 0; k <= 4; k++) {
        const t = t0 + ((end - t0) * k) / 4;
        nodes.push(svg("text", { x: x(t), y: 186, class: "axis", "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle" },
          k === 0 ? clock(t) : "+" + ((t - t0) / 1000).toFixed(1) + " s"));
      }
      tl.replaceChildren(...nodes);
      const epochs = masters.filter((m) => !m.gap).map((m) => m.epoch);
      $("#tl-cap").textContent = "The job's events over time: " + states.map((s) => s.state).join(" → ") +
        (epochs.length ? "; master epochs " + epochs.join(", ") : "") +
        (moves.length ? "; " + moves.map((m) => "master moved (" + m.reason + ") to epoch " + m.epoch).join("; ") : "") + ".";
    }

    let pending = false;
    function later() {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        renderTimeline();
        renderEventsTable();
      });
    }

    connect("/ui/live?job=" + encodeURIComponent(id), {
      snapshot: (s) => {
        skew = Date.parse(s.now) - Date.now();
        row = s.row;
        workers = s.workers || {};
        events = [];
        seen.clear();
        for (const e of s.events) addEvent(e);
        renderSummary(s.job);
        renderGrid(true);
        later();
      },
      event: (e) => {
        if (addEvent(e)) later();
      },
      job: (m) => {
        row = m.row;
        renderSummary(m.job);
        later();
      },
      workers: (changed) => {
        for (const [wid, w] of Object.entries(changed)) {
          workers[wid] = w;
          setCell(wid, w);
        }
        renderGrid(false);
      },
      failure: (e) => setLive(e.code + ": " + e.message),
    });
    // The time axis moves while the job runs.
    setInterval(() => {
      now = Date.now();
      if (row && !terminal(row.state)) later();
    }, 1000);
  }
})();
