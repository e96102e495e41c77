/// The status page a node serves at `/` (docs/METRICS.md "Status page"): one static document,
/// no build step and nothing fetched from elsewhere. Its script reads `status.json` every two
/// seconds and draws the members, the alerts, the last audit and two charts. Elements carry
/// `data-` attributes (node, role, reachable, agreement) that the browser test reads.
enum StatusPage {
    static let html: [UInt8] = Array(
        #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Fauna status</title>
        <style>
          :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2430; --mute:#6b7482; --line:#e1e5ea;
                  --ok:#1f8a4c; --warn:#b7791f; --bad:#c53030; --lead:#2b6cb0; }
          * { box-sizing: border-box; }
          body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--ink); }
          header { display:flex; align-items:baseline; gap:16px; padding:14px 24px; background:#1d2430; color:#fff; }
          header h1 { margin:0; font-size:18px; font-weight:600; }
          header .mute { color:#aab3c0; }
          #summary { margin-left:auto; padding:3px 10px; border-radius:12px; font-weight:600; background:#4a5568; }
          #summary.ok { background:var(--ok); } #summary.warning { background:var(--warn); } #summary.critical { background:var(--bad); }
          main { padding:18px 24px; display:grid; gap:18px; max-width:1200px; }
          section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; }
          h2 { margin:0 0 10px; font-size:14px; text-transform:uppercase; letter-spacing:.04em; color:var(--mute); }
          table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
          th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
          th { color:var(--mute); font-weight:500; }
          td.num { text-align:right; } th.num { text-align:right; }
          tr.leader td:first-child { font-weight:700; color:var(--lead); }
          tr.down td { color:var(--mute); }
          .pill { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; }
          .pill.ok { background:#e3f4ea; color:var(--ok); } .pill.bad { background:#fde8e8; color:var(--bad); }
          .pill.warn { background:#fdf3e1; color:var(--warn); } .pill.lead { background:#e2ecf8; color:var(--lead); }
          .pill.mute { background:#edf0f3; color:var(--mute); }
          code { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size:12px; }
          #alerts { list-style:none; margin:0; padding:0; }
          #alerts li { padding:6px 10px; border-radius:6px; margin-bottom:6px; }
          #alerts li.critical { background:#fde8e8; color:#822727; }
          #alerts li.warning { background:#fdf3e1; color:#744210; }
          #alerts li.none { background:#e3f4ea; color:#22543d; }
          .charts { display:grid; grid-template-columns:repeat(auto-fit, minmax(420px, 1fr)); gap:18px; }
          svg { width:100%; height:180px; display:block; }
          .legend { display:flex; gap:14px; font-size:12px; color:var(--mute); margin-top:4px; }
          .legend span::before { content:""; display:inline-block; width:10px; height:3px; margin-right:5px; vertical-align:middle; background:var(--c); }
          #conn { color:#fbd38d; }
        </style>
        </head>
        <body>
        <header>
          <h1>Fauna</h1>
          <span class="mute">cluster <b id="cluster">…</b> · seen from <b id="served-by">…</b></span>
          <span class="mute" id="updated"></span><span id="conn"></span>
          <span id="summary">loading</span>
        </header>
        <main>
          <section><h2>Alerts</h2><ul id="alerts"><li class="none">loading…</li></ul></section>
          <section>
            <h2>Members</h2>
            <table>
              <thead><tr><th>Node</th><th>Role</th><th class="num">Term</th><th class="num">Commit</th><th class="num">Applied</th>
                <th class="num">Tree size</th><th id="root-head">Tree root</th><th>State digest</th><th>Ready</th><th class="num">On disk</th></tr></thead>
              <tbody id="nodes"></tbody>
            </table>
          </section>
          <section><h2>Last audit</h2><div id="audit">none yet</div></section>
          <div class="charts">
            <section><h2>Throughput, per second</h2><svg id="chart-throughput" viewBox="0 0 600 180" preserveAspectRatio="none"></svg>
              <div class="legend" id="legend-throughput"></div></section>
            <section><h2>Latency at this node, ms</h2><svg id="chart-latency" viewBox="0 0 600 180" preserveAspectRatio="none"></svg>
              <div class="legend" id="legend-latency"></div></section>
          </div>
        </main>
        <script>
        "use strict";
        const $ = id => document.getElementById(id);
        const num = n => n == null ? "–" : Number(n).toLocaleString("en-US");
        const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; };
        const bytes = n => n == null ? "–" : n < 1048576 ? (n / 1024).toFixed(0) + " KiB" : n < 1073741824 ? (n / 1048576).toFixed(1) + " MiB" : (n / 1073741824).toFixed(2) + " GiB";
        const ago = t => { const s = Math.max(0, Math.round(Date.now() / 1000 - t)); return s < 90 ? s + " s ago" : Math.round(s / 60) + " min ago"; };
        const clock = t => new Date(t * 1000).toLocaleTimeString();
        const tick = v => v >= 100 ? Math.round(v).toLocaleString("en-US") : v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2);

        function render(d) {
          $("cluster").textContent = d.cluster;
          $("served-by").textContent = d.node;
          $("updated").textContent = d.updatedAt ? "updated " + ago(d.updatedAt) : "waiting for the first round";
          const worst = d.alerts.some(a => a.level === "critical") ? "critical" : d.alerts.length ? "warning" : "ok";
          const summary = $("summary");
          summary.className = worst;
          summary.textContent = worst === "ok" ? "all good" : d.alerts.length + (d.alerts.length === 1 ? " alert" : " alerts");
          summary.dataset.level = worst;

          const alerts = $("alerts");
          alerts.replaceChildren();
          for (const a of d.alerts) { const li = el("li", a.level, a.text); li.dataset.level = a.level; alerts.append(li); }
          if (!d.alerts.length) alerts.append(el("li", "none", "No alerts: every member answers, agrees and is ready."));

          $("root-head").textContent = d.commonSize ? "Tree root at size " + num(d.commonSize) : "Tree root";
          const rows = $("nodes");
          rows.replaceChildren();
          for (const n of d.nodes) {
            const tr = el("tr", (n.role === "leader" ? "leader" : "") + (n.reachable ? "" : " down"));
            tr.dataset.node = n.name;
            tr.dataset.role = n.reachable ? n.role : "unreachable";
            tr.dataset.reachable = String(n.reachable);
            tr.dataset.rootAgrees = String(n.rootAgrees);
            tr.dataset.digestAgrees = String(n.digestAgrees);
            const name = el("td", null, n.name + (n.me ? " (this node)" : ""));
            name.title = n.client;
            tr.append(name);
            const role = el("td");
            if (!n.reachable) { const p = el("span", "pill bad", "unreachable"); p.title = n.error || ""; role.append(p); }
            else role.append(el("span", "pill " + (n.role === "leader" ? "lead" : "mute"), n.role + (n.learner ? " (learner)" : "")));
            tr.append(role);
            for (const v of [n.term, n.commit, n.applied, n.treeSize]) tr.append(el("td", "num", num(v)));
            const root = el("td");
            if (n.rootAtCommonSize) {
              root.append(el("code", null, n.rootAtCommonSize.slice(0, 12) + "… "));
              root.append(n.rootAgrees === false ? el("span", "pill bad", "differs") : n.rootAgrees ? el("span", "pill ok", "agrees") : el("span", "pill mute", "no majority"));
            } else root.textContent = "–";
            tr.append(root);
            const digest = el("td");
            digest.append(n.digestAgrees === false ? el("span", "pill bad", "differs") : n.digestAgrees ? el("span", "pill ok", "agrees") : el("span", "pill mute", "not audited"));
            tr.append(digest);
            const ready = el("td");
            if (n.ready === true) ready.append(el("span", "pill ok", "ready"));
            else if (n.ready === false) { const p = el("span", "pill warn", "not ready"); p.title = n.checks.filter(c => !c.ok).map(c => c.name + ": " + c.detail).join("\n"); ready.append(p); }
            else ready.textContent = "–";
            tr.append(ready);
            tr.append(el("td", "num", bytes(n.dbSizeBytes)));
            rows.append(tr);
          }

          const audit = $("audit");
          audit.replaceChildren();
          const next = d.nextAuditAt ? " Next audit in " + Math.max(0, Math.round(d.nextAuditAt - Date.now() / 1000)) + " s (every " + d.auditIntervalSeconds + " s)." : "";
          if (!d.audit) { audit.textContent = "No audit yet." + next; audit.dataset.clean = "unknown"; }
          else {
            const a = d.audit;
            audit.dataset.clean = String(a.clean);
            const head = el("p");
            head.append(el("span", "pill " + (a.clean ? "ok" : "bad"), a.clean ? "clean" : "problems"));
            head.append(" " + clock(a.at) + (a.revision != null ? ", at revision " + num(a.revision) : "") +
              (a.clean ? ": every member's state digest and tree root agree." : ", found:") + next);
            audit.append(head);
            if (a.problems.length) { const ul = el("ul"); for (const p of a.problems) ul.append(el("li", null, p)); audit.append(ul); }
          }

          const s = d.samples;
          chart("chart-throughput", "legend-throughput", s, [
            ["commits (cluster)", "#2b6cb0", x => x.commitsPerSecond],
            ["writes answered here", "#1f8a4c", x => x.writesPerSecond],
            ["reads answered here", "#b7791f", x => x.readsPerSecond]]);
          chart("chart-latency", "legend-latency", s, [
            ["write p99", "#c53030", x => x.writeP99Ms], ["write mean", "#f56565", x => x.writeMeanMs],
            ["read p99", "#6b46c1", x => x.readP99Ms], ["read mean", "#9f7aea", x => x.readMeanMs]]);
        }

        function chart(id, legendId, samples, series) {
          const svg = $(id), W = 600, H = 180, L = 44, B = 18;
          const ns = "http://www.w3.org/2000/svg";
          const mk = (tag, attrs, text) => { const e = document.createElementNS(ns, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text != null) e.textContent = text; return e; };
          svg.replaceChildren();
          let max = 0;
          for (const [, , f] of series) for (const x of samples) { const v = f(x); if (v != null && v > max) max = v; }
          max = max > 0 ? max * 1.15 : 1;
          const t0 = samples.length ? samples[0].t : 0, t1 = samples.length ? samples[samples.length - 1].t : 1;
          const X = t => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - L - 6), Y = v => 6 + (1 - v / max) * (H - B - 6);
          for (const f of [0, 0.5, 1]) {
            svg.append(mk("line", { x1: L, x2: W - 6, y1: Y(max * f), y2: Y(max * f), stroke: "#e1e5ea" }));
            svg.append(mk("text", { x: L - 4, y: Y(max * f) + 4, "text-anchor": "end", "font-size": 10, fill: "#6b7482" }, tick(max * f)));
          }
          if (samples.length) {
            svg.append(mk("text", { x: L, y: H - 3, "font-size": 10, fill: "#6b7482" }, clock(t0)));
            svg.append(mk("text", { x: W - 6, y: H - 3, "font-size": 10, fill: "#6b7482", "text-anchor": "end" }, clock(t1)));
          }
          const legend = $(legendId);
          legend.replaceChildren();
          for (const [name, color, f] of series) {
            // One line per run of samples with a value: no line across an interval without one.
            const runs = [[]];
            for (const x of samples) {
              const v = f(x);
              if (v == null) { if (runs[runs.length - 1].length) runs.push([]); continue; }
              runs[runs.length - 1].push(X(x.t).toFixed(1) + "," + Y(v).toFixed(1));
            }
            for (const pts of runs.filter(r => r.length)) {
              if (pts.length === 1) { const [cx, cy] = pts[0].split(","); svg.append(mk("circle", { cx, cy, r: 2, fill: color, "data-series": name })); }
              else svg.append(mk("polyline", { points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 1.6, "data-series": name }));
            }
            const last = samples.length ? f(samples[samples.length - 1]) : null;
            const item = el("span", null, name + (last != null ? " " + last.toFixed(last < 10 ? 2 : 0) : ""));
            item.style.setProperty("--c", color);
            legend.append(item);
          }
        }

        async function refresh() {
          let d;
          try {
            const r = await fetch("status.json", { cache: "no-store" });
            if (!r.ok) throw new Error("HTTP " + r.status);
            d = await r.json();
          } catch (e) {
            $("conn").textContent = "· this node does not answer (" + e.message + "); showing its last answer";
            return;
          }
          $("conn").textContent = "";
          render(d);
        }
        refresh();
        setInterval(refresh, 2000);
        </script>
        </body>
        </html>
        """#.utf8)
}
