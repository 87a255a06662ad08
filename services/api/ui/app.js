/* The SimKO job page (served by the job API, services/api/ui.py; no other site is contacted).

   start()
     no token in sessionStorage  -> the token form (nothing else is fetched or shown)
     /ui                         -> jobsPage: GET /v1/ui/jobs every REFRESH_MS, a table
     /ui/jobs/{id}               -> jobPage:  GET /v1/jobs/{id} (state, JobSpec),
                                              /v1/jobs/{id}/metrics?since=N (new steps only),
                                              /v1/jobs/{id}/log (controller.log tail, final pass@K)
                                   then inline SVG charts; polls until the job is finished
   A 401 forgets the token and shows the form again. Every value goes into the page as text
   (textContent / setAttribute), never as HTML.

   The DOM is the test surface (tests/api/test_ui*.py): each chart is <svg class="chart"
   id="chart-NAME" data-points="N">, each line a <polyline data-key="metric" data-last="value">. */
"use strict";

(function () {
  const TOKEN_KEY = "simko.api.token";
  const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
  const query = new URLSearchParams(location.search);
  const REFRESH_MS = Math.max(250, Number(query.get("refresh")) || 3000);
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#a16207", "#db2777"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const W = 440, H = 190, M = { l: 56, r: 10, t: 10, b: 24 };
  const PASS_AT_K = /^eval\/pass@(\d+)$/;

  const CHARTS = [
    { id: "lambda", title: "\u039b^(k) (log-prob of the rank-k candidate) and \u039b (sampled)",
      keys: [["dist/lambda_1", "\u039b^(1)"], ["dist/lambda_2", "\u039b^(2)"], ["dist/lambda_3", "\u039b^(3)"],
             ["dist/lambda_sampled", "\u039b sampled"]] },
    { id: "entropy", title: "token entropy",
      keys: [["dist/entropy_mean", "mean"], ["dist/entropy_p50", "p50"], ["dist/entropy_p80", "p80"],
             ["dist/entropy_p95", "p95"]] },
    { id: "reward", title: "reward", keys: [["reward/mean", "mean"], ["reward/accuracy", "accuracy"]] },
    { id: "loss", title: "loss", keys: [["loss/policy", "policy loss"]] },
    { id: "throughput", title: "throughput (tokens/s)",
      keys: [["perf/tokens_per_s", "learner update"], ["perf/rollout_generate_tokens_per_s", "rollout generate"]] },
    { id: "passk", title: "pass@K (evaluation during training)", keys: passAtKKeys,
      empty: "no evaluation yet (trainer.eval_every)" },
  ];

  const app = document.getElementById("app");
  const statusLine = document.getElementById("status");
  const logout = document.getElementById("logout");
  let timer = null;

  class AuthError extends Error {}

  // ------------------------------------------------------------------ DOM helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) node.setAttribute(k, v);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function fmt(v) {
    if (typeof v !== "number" || !isFinite(v)) return "\u2013";
    const a = Math.abs(v);
    if (a >= 1000) return v.toFixed(0);
    if (a >= 1 || a === 0) return Number(v.toPrecision(4)).toString();
    return Number(v.toPrecision(3)).toString();
  }

  function age(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? "error" : "muted";
  }

  // ------------------------------------------------------------------ the API
  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  async function api(path) {
    const t = token();
    if (!t) throw new AuthError("");
    const response = await fetch(path, { headers: { Authorization: "Bearer " + t }, cache: "no-store" });
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      throw new AuthError("the API refused this token");
    }
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = JSON.stringify((await response.json()).detail); } catch (_) { /* not JSON */ }
      throw new Error(`${path}: HTTP ${response.status} ${detail}`);
    }
    return response.json();
  }

  function schedule(fn) {
    clearTimeout(timer);
    timer = setTimeout(() => run(fn), REFRESH_MS);
  }

  async function run(fn) {
    try {
      await fn();
    } catch (err) {
      if (err instanceof AuthError) {
        showLogin(err.message);
      } else {
        setStatus("error: " + err.message + " (retrying)", true);
        schedule(fn);
      }
    }
  }

  function showLogin(message) {
    clearTimeout(timer);
    logout.hidden = true;
    setStatus("");
    const input = el("input", { id: "token", type: "password", autocomplete: "off", placeholder: "bearer token" });
    const form = el("form", { id: "login" },
      el("h2", {}, "API token"),
      el("p", { class: "muted" }, "The job API's bearer token (SIMKO_API_TOKEN). It is kept in this tab's session storage only."),
      input,
      el("button", { id: "login-submit", type: "submit" }, "Show"),
      el("p", { id: "login-error", class: "error" }, message || ""));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      start();
    });
    app.replaceChildren(form);
    input.focus();
  }

  // ------------------------------------------------------------------ jobs list
  function jobsPage() {
    const tick = async () => {
      const jobs = await api("/v1/ui/jobs");
      renderJobs(jobs);
      setStatus(`${jobs.length} job${jobs.length === 1 ? "" : "s"} \u00b7 updated ${new Date().toLocaleTimeString()}`);
      schedule(tick);
    };
    return run(tick);
  }

  function renderJobs(jobs) {
    if (!jobs.length) {
      app.replaceChildren(el("p", { id: "no-jobs", class: "muted" }, "No jobs yet: simko submit CONFIG.yaml"));
      return;
    }
    const head = el("tr", {}, ...["job", "name", "state", "step", "reward", "workers", "age"].map((h) => el("th", {}, h)));
    const body = el("tbody");
    for (const job of jobs) {
      body.append(el("tr", { "data-job-id": job.id },
        el("td", {}, el("a", { href: "/ui/jobs/" + encodeURIComponent(job.id) }, job.id)),
        el("td", {}, job.name),
        el("td", {}, el("span", { class: "state " + job.state }, job.state)),
        el("td", { class: "num step" }, job.steps ? `${job.step} / ${job.steps}` : String(job.step)),
        el("td", { class: "num reward" }, fmt(job.reward)),
        el("td", { class: "num workers" }, job.workers === null ? "\u2013" : String(job.workers)),
        el("td", { class: "num age" }, age(job.age_s))));
    }
    app.replaceChildren(el("table", { id: "jobs" }, el("thead", {}, head), body));
  }

  // ------------------------------------------------------------------ one job
  function jobPage(jobId) {
    const rows = [];
    let view = null;
    const base = "/v1/jobs/" + encodeURIComponent(jobId);
    const tick = async () => {
      const [job, fresh, log] = await Promise.all([
        api(base), api(`${base}/metrics?since=${rows.length}`), api(`${base}/log?lines=200`)]);
      rows.push(...fresh);
      if (view === null) view = buildJobView();  // only after the token worked: nothing shows without it
      renderJob(view, job, rows, log);
      if (TERMINAL.has(job.state)) {
        setStatus(`finished (${job.state}) \u00b7 ${rows.length} steps`);
      } else {
        setStatus(`live \u00b7 every ${REFRESH_MS / 1000}s \u00b7 updated ${new Date().toLocaleTimeString()}`);
        schedule(tick);
      }
    };
    return run(tick);
  }

  function buildJobView() {
    const view = { title: el("h2", { id: "job-title" }), facts: el("div", { class: "facts", id: "facts" }),
                   charts: {}, spec: el("pre", { id: "jobspec" }), log: el("pre", { id: "log" }),
                   finalEval: el("div", { id: "final-eval" }) };
    const grid = el("div", { class: "charts" });
    for (const chart of CHARTS) {
      const svg = svgEl("svg", { class: "chart", id: "chart-" + chart.id, viewBox: `0 0 ${W} ${H}`, "data-points": "0" });
      const legend = el("div", { class: "legend", id: "legend-" + chart.id });
      view.charts[chart.id] = { svg, legend };
      grid.append(el("div", { class: "card" }, el("h3", {}, chart.title), svg, legend));
    }
    const histSvg = svgEl("svg", { class: "chart", id: "chart-entropy_hist", viewBox: `0 0 ${W} ${H}`, "data-bins": "0" });
    view.histTitle = el("h3", {}, "token-entropy histogram");
    view.hist = histSvg;
    grid.append(el("div", { class: "card" }, view.histTitle, histSvg,
      el("div", { class: "legend" }, el("span", {}, el("span", { class: "swatch", style: "background:#2563eb" }), "latest step"),
        el("span", {}, el("span", { class: "swatch", style: "background:#9aa4ae" }), "first step"),
        el("span", { class: "muted" }, "counts on a log scale"))));
    app.replaceChildren(view.title, view.facts, grid, view.finalEval,
      el("div", { class: "two" },
        el("section", {}, el("h3", {}, "JobSpec"), view.spec),
        el("section", {}, el("h3", {}, "controller.log (tail)"), view.log)));
    return view;
  }

  function renderJob(view, job, rows, log) {
    const last = rows.length ? rows[rows.length - 1] : {};
    const steps = job.spec && job.spec.trainer ? job.spec.trainer.steps : null;
    view.title.replaceChildren(`${job.name} `, el("span", { class: "muted" }, job.id));
    const fact = (label, value, id) => el("span", {}, `${label} `, el("b", { id }, value));
    view.facts.replaceChildren(
      el("span", { class: "state " + job.state, id: "job-state" }, job.state),
      fact("step", steps ? `${job.step} / ${steps}` : String(job.step), "job-step"),
      fact("reward", fmt(last["reward/mean"]), "job-reward"),
      fact("workers", typeof last["rollout/workers"] === "number" ? String(last["rollout/workers"]) : "\u2013", "job-workers"),
      fact("age", age(Date.now() / 1000 - job.created_at), "job-age"),
      ...(job.error ? [el("span", { class: "error", id: "job-error" }, job.error)] : []));
    for (const chart of CHARTS) {
      const keys = typeof chart.keys === "function" ? chart.keys(rows) : chart.keys;
      lineChart(view.charts[chart.id], keys, rows, chart.empty || "no data yet");
    }
    histogram(view, rows);
    const specText = JSON.stringify(job.spec, null, 2);
    if (view.spec.textContent !== specText) view.spec.textContent = specText;
    const atBottom = view.log.scrollTop + view.log.clientHeight >= view.log.scrollHeight - 4;
    view.log.textContent = log.lines.length ? log.lines.join("\n") : `(no ${log.path} yet)`;
    if (atBottom) view.log.scrollTop = view.log.scrollHeight;
    renderFinalEval(view.finalEval, log.final_eval, log.final_eval_error);
  }

  function passAtKKeys(rows) {
    const ks = new Set();
    for (const row of rows) for (const key of Object.keys(row)) { const m = PASS_AT_K.exec(key); if (m) ks.add(Number(m[1])); }
    return [...ks].sort((a, b) => a - b).map((k) => [`eval/pass@${k}`, `pass@${k}`]);
  }

  function stepOf(row, index) {
    const s = row["trainer/step"];
    return typeof s === "number" ? s : index + 1;
  }

  // ------------------------------------------------------------------ charts (inline SVG)
  function lineChart(target, keys, rows, emptyText) {
    const { svg, legend } = target;
    const series = keys.map(([key, label], i) => ({
      key, label, color: COLORS[i % COLORS.length],
      points: rows.map((row, j) => [stepOf(row, j), row[key]]).filter(([, y]) => typeof y === "number" && isFinite(y)),
    }));
    const all = series.flatMap((s) => s.points);
    svg.replaceChildren();
    svg.setAttribute("data-points", String(Math.max(0, ...series.map((s) => s.points.length))));
    legend.replaceChildren();
    if (!all.length) {
      svg.append(Object.assign(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }), { textContent: emptyText }));
      return;
    }
    const [x0, x1] = padRange(Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0])), 0.5);
    const ys = all.map((p) => p[1]);
    const yTicks = niceTicks(...padRange(Math.min(...ys), Math.max(...ys), null));
    const y0 = yTicks[0], y1 = yTicks[yTicks.length - 1];
    const sx = (x) => M.l + ((x - x0) / (x1 - x0)) * (W - M.l - M.r);
    const sy = (y) => H - M.b - ((y - y0) / (y1 - y0)) * (H - M.t - M.b);
    axes(svg, x0, x1, yTicks, sx, sy);
    for (const s of series) {
      if (!s.points.length) continue;
      const line = svgEl("polyline", { points: s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "),
        stroke: s.color, "data-key": s.key, "data-points": String(s.points.length),
        "data-last": String(s.points[s.points.length - 1][1]) });
      svg.append(line);
      if (s.points.length <= 60) {
        for (const [x, y] of s.points) svg.append(svgEl("circle", { cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: 2.2, fill: s.color }));
      }
    }
    for (const s of series) {
      const lastValue = s.points.length ? s.points[s.points.length - 1][1] : NaN;
      legend.append(el("span", {}, el("span", { class: "swatch", style: `background:${s.color}` }), `${s.label} `,
        el("b", { "data-key": s.key }, fmt(lastValue))));
    }
  }

  function padRange(lo, hi, minHalfWidth) {
    if (hi - lo > 0) {
      if (minHalfWidth !== null) return [lo, hi];
      const pad = (hi - lo) * 0.06;
      return [lo - pad, hi + pad];
    }
    const half = minHalfWidth !== null ? minHalfWidth : Math.max(Math.abs(lo) * 0.1, 1e-3);
    return [lo - half, hi + half];
  }

  function niceTicks(lo, hi) {
    // About 4 intervals on 1 / 2 / 5 x 10^n boundaries, covering [lo, hi].
    const raw = (hi - lo) / 4, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
    const ticks = [];
    let t = Math.floor(lo / step) * step;
    for (; t < hi - step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
    ticks.push(Number(t.toPrecision(12)));  // the first tick at or above hi
    return ticks.length >= 2 ? ticks : [lo, hi];
  }

  function axes(svg, x0, x1, yTicks, sx, sy) {
    for (const y of yTicks) {
      svg.append(svgEl("line", { class: "grid", x1: M.l, x2: W - M.r, y1: sy(y), y2: sy(y) }));
      svg.append(Object.assign(svgEl("text", { x: M.l - 4, y: sy(y) + 4, "text-anchor": "end" }), { textContent: fmt(y) }));
    }
    svg.append(svgEl("line", { class: "axis", x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }));
    svg.append(svgEl("line", { class: "axis", x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
    const lo = Math.ceil(x0), hi = Math.floor(x1);
    const every = Math.max(1, Math.ceil((hi - lo + 1) / 8));
    for (let x = lo; x <= hi; x += every) {
      svg.append(Object.assign(svgEl("text", { x: sx(x), y: H - 8, "text-anchor": "middle" }), { textContent: String(x) }));
    }
  }

  function histogram(view, rows) {
    const withHist = rows.filter((r) => Array.isArray(r["dist/entropy_hist"]) && Array.isArray(r["dist/entropy_hist_edges"]));
    const svg = view.hist;
    svg.replaceChildren();
    if (!withHist.length) {
      svg.setAttribute("data-bins", "0");
      svg.append(Object.assign(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }), { textContent: "no data yet" }));
      return;
    }
    const latest = withHist[withHist.length - 1], first = withHist[0];
    const counts = latest["dist/entropy_hist"], edges = latest["dist/entropy_hist_edges"];
    const step = stepOf(latest, rows.indexOf(latest));
    view.histTitle.textContent = `token-entropy histogram (step ${step})`;
    svg.setAttribute("data-bins", String(counts.length));
    svg.setAttribute("data-step", String(step));
    const scale = (c) => Math.log10(1 + c);
    const top = Math.max(1e-9, ...counts.map(scale), ...first["dist/entropy_hist"].map(scale));
    const sx = (x) => M.l + ((x - edges[0]) / (edges[edges.length - 1] - edges[0])) * (W - M.l - M.r);
    const sy = (v) => H - M.b - (v / top) * (H - M.t - M.b);
    svg.append(svgEl("line", { class: "axis", x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
    counts.forEach((c, i) => {
      const x = sx(edges[i]), w = Math.max(1, sx(edges[i + 1]) - x - 1);
      svg.append(svgEl("rect", { class: "bar", x: x.toFixed(1), y: sy(scale(c)).toFixed(1), width: w.toFixed(1),
        height: (H - M.b - sy(scale(c))).toFixed(1), fill: "#2563eb", "fill-opacity": "0.75", "data-count": String(c) }));
    });
    const firstCounts = first["dist/entropy_hist"];
    if (first !== latest && firstCounts.length === counts.length) {
      const pts = firstCounts.map((c, i) => `${((sx(edges[i]) + sx(edges[i + 1])) / 2).toFixed(1)},${sy(scale(c)).toFixed(1)}`);
      svg.append(svgEl("polyline", { points: pts.join(" "), stroke: "#9aa4ae", "data-key": "first-step" }));
    }
    const ends = [[edges[0], "start"], [(edges[0] + edges[edges.length - 1]) / 2, "middle"], [edges[edges.length - 1], "end"]];
    for (const [x, anchor] of ends) {
      svg.append(Object.assign(svgEl("text", { x: sx(x), y: H - 8, "text-anchor": anchor }), { textContent: fmt(x) + " nats" }));
    }
  }

  function renderFinalEval(target, table, error) {
    if (error) { target.replaceChildren(el("p", { class: "error" }, error)); return; }
    if (!table) { target.replaceChildren(); return; }
    const ks = Object.keys(table).sort((a, b) => Number(a) - Number(b));
    target.replaceChildren(el("div", { class: "card" }, el("h3", {}, "final evaluation (eval/pass_at_k.json)"),
      el("table", { id: "final-eval-table" },
        el("thead", {}, el("tr", {}, el("th", {}, "k"), ...ks.map((k) => el("th", {}, `pass@${k}`)))),
        el("tbody", {}, el("tr", {}, el("td", {}, "pass@k"), ...ks.map((k) => el("td", { class: "num" }, fmt(table[k]))))))));
  }

  // ------------------------------------------------------------------ entry
  function start() {
    clearTimeout(timer);
    if (!token()) { showLogin(""); return; }
    logout.hidden = false;
    const page = document.body.dataset.page;
    if (page === "job") {
      const id = decodeURIComponent(location.pathname.replace(/^\/ui\/jobs\//, "").replace(/\/$/, ""));
      jobPage(id);
    } else {
      jobsPage();
    }
  }

  logout.addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(""); });
  start();
})();
