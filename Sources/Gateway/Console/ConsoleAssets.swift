/// The console's stylesheet and script, served from `/console/assets/` (the pages' CSP allows
/// scripts and styles from the gateway itself only, so nothing is inline).
enum ConsoleAssets {
    static let css = #"""
    :root { --fg: #1b1f24; --muted: #4a5360; --bg: #fff; --panel: #f4f6f8; --line: #c9d1d9; --accent: #0b57d0;
      --ok: #1a7f37; --warn: #9a6700; --bad: #c62828; --gone: #6e4a9e; --stopped: #a0307e; --lost: #57606a; --late: #7d4e24; --run: #0b57d0; --pend: #5b8def; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
    a { color: var(--accent); }
    a:focus, button:focus, input:focus, select:focus, textarea:focus, summary:focus { outline: 3px solid #f9a825; outline-offset: 2px; }
    .skip { position: absolute; left: -999px; } .skip:focus { left: 8px; top: 8px; background: #fff; padding: 4px 8px; z-index: 2; }
    header.top { display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: center; padding: 8px 16px; background: #102a43; color: #fff; }
    header.top a { color: #fff; } header.top .brand { font-weight: 700; text-decoration: none; font-size: 1.1rem; }
    header.top nav ul { display: flex; gap: 16px; list-style: none; margin: 0; padding: 0; }
    header.top nav a[aria-current="page"] { font-weight: 700; text-decoration-thickness: 3px; }
    header.top .who { margin-left: auto; display: flex; gap: 12px; align-items: center; font-size: .9rem; }
    header.top .who button { background: transparent; color: #fff; border: 1px solid #fff; }
    main { max-width: 1100px; margin: 0 auto; padding: 16px; }
    h1 { font-size: 1.6rem; margin: .5rem 0 1rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
    table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
    .table-wrap { overflow-x: auto; }
    button, .button { font: inherit; padding: 6px 14px; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
    button.secondary { background: #fff; color: var(--accent); } button.danger { background: var(--bad); border-color: var(--bad); }
    button:disabled { background: #d0d7de; border-color: #d0d7de; color: #424a53; cursor: not-allowed; }
    label { display: block; font-weight: 600; margin: .75rem 0 .25rem; }
    input[type=text], input[type=password], input[type=search], select, textarea { font: inherit; padding: 6px 8px; border: 1px solid #6e7781; border-radius: 4px; width: 100%; max-width: 40rem; }
    textarea { font-family: ui-monospace, monospace; font-size: .9rem; max-width: none; min-height: 18rem; }
    .row { display: flex; flex-wrap: wrap; gap: 12px; align-items: end; } .row > div { flex: 1 1 14rem; } .row > .full { flex-basis: 100%; margin: 0; }
    .tag { display: inline-block; background: #ddf4ff; color: #0a3069; border-radius: 10px; padding: 0 8px; margin: 0 4px 4px 0; font-size: .85rem; text-decoration: none; }
    .status { display: inline-block; border-radius: 4px; padding: 0 6px; font-size: .85rem; font-weight: 600; color: #fff; background: var(--lost); }
    .s-completed { background: var(--ok); } .s-deviated { background: var(--warn); } .s-failed { background: var(--bad); }
    .s-interrupted { background: var(--gone); } .s-aborted { background: var(--stopped); } .s-lost { background: var(--lost); } .s-timed_out { background: var(--late); }
    .s-running { background: var(--run); } .s-pending { background: var(--pend); color: #000; }
    .muted { color: var(--muted); } .error { color: var(--bad); } .warning { color: var(--warn); }
    .notice { border-left: 4px solid var(--bad); background: #fff1f0; padding: 8px 12px; }
    pre { background: var(--panel); padding: 12px; overflow: auto; font-size: .85rem; max-height: 40rem; }
    ol.steps { padding-left: 1.5rem; } ol.steps li { margin: .5rem 0; } ol.steps code { background: var(--panel); padding: 0 4px; }
    dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; } dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
    .source { font-family: ui-monospace, monospace; font-size: .85rem; border: 1px solid var(--line); }
    .source td { border: 0; padding: 0 8px; white-space: pre-wrap; word-break: break-all; }
    .source td.n { color: var(--muted); text-align: right; user-select: none; width: 3rem; }
    .source tr.has-problem td { background: #fff1f0; }
    .source tr.problem td { background: #ffebe9; color: #82071e; font-family: system-ui, sans-serif; white-space: normal; }
    .source tr.problem.warning td { background: #fff8c5; color: #4d2d00; }
    .controls { display: flex; flex-wrap: wrap; gap: 8px; margin: 1rem 0; } .controls form { margin: 0; display: flex; gap: 8px; align-items: center; }
    label.inline { display: inline; margin: 0; font-weight: normal; }
    ol.timeline { list-style: none; padding: 0; margin: 0; border: 1px solid var(--line); }
    ol.timeline li { display: grid; grid-template-columns: minmax(8rem, 16rem) 1fr; gap: 8px; align-items: center; padding: 4px 8px; border-bottom: 1px solid var(--line); }
    ol.timeline .label { font-size: .9rem; overflow-wrap: anywhere; } ol.timeline .phase { color: var(--muted); font-size: .8rem; display: block; }
    ol.timeline .track { position: relative; height: 1.4rem; background: var(--panel); }
    ol.timeline .bar { position: absolute; top: 2px; bottom: 2px; min-width: 4px; border-radius: 3px; background: var(--run); }
    .bar.succeeded, .bar.met, ol.timeline .bar.succeeded, ol.timeline .bar.met { background: var(--ok); }
    .bar.failed, .bar.not-met, ol.timeline .bar.failed, ol.timeline .bar.not-met { background: var(--bad); }
    .bar.paused, ol.timeline .bar.paused { background: var(--warn); } .bar.running { background: var(--run); }
    .legend { display: flex; flex-wrap: wrap; gap: 12px; font-size: .85rem; margin: .5rem 0; list-style: none; padding: 0; }
    .legend .swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; }
    svg.chart { width: 100%; height: auto; max-width: 900px; } svg.chart text { font: 11px system-ui, sans-serif; fill: #1b1f24; }
    .f-completed { fill: var(--ok); background: var(--ok); } .f-deviated { fill: var(--warn); background: var(--warn); } .f-failed { fill: var(--bad); background: var(--bad); }
    .f-interrupted { fill: var(--gone); background: var(--gone); } .f-aborted { fill: var(--stopped); background: var(--stopped); }
    .f-lost { fill: var(--lost); background: var(--lost); } .f-timed_out { fill: var(--late); background: var(--late); }
    .f-running, .f-pending { fill: var(--run); background: var(--run); }
    .sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
    @media (max-width: 640px) {
      header.top .who { margin-left: 0; } main { padding: 8px; }
      ol.timeline li { grid-template-columns: 1fr; } table.responsive thead { display: none; }
      table.responsive tr { display: block; border-bottom: 1px solid var(--line); padding: 4px 0; } table.responsive td { display: block; border: 0; padding: 2px 4px; }
      table.responsive td[data-label]::before { content: attr(data-label) ": "; font-weight: 600; }
    }
    svg.chart line.grid { stroke: #d0d7de; } svg.chart .score-line { fill: none; stroke: var(--accent); stroke-width: 2; }
    svg.chart .score-point { fill: var(--accent); }
    svg.spark { vertical-align: middle; } svg.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; } svg.spark circle { fill: var(--accent); }
    .halt { border: 1px solid var(--line); border-left: 6px solid var(--ok); padding: 8px 12px; margin-bottom: 1rem; }
    .halt.halted { border-left-color: var(--bad); background: #fff1f0; }
    .halt details summary { cursor: pointer; color: var(--bad); font-weight: 600; }
    .tag.secret-set { background: #dafbe1; color: #0f5323; } .saved { border-left: 4px solid var(--ok); background: #dafbe1; padding: 8px 12px; }
    fieldset { border: 1px solid var(--line); border-radius: 4px; margin: .75rem 0; padding: 4px 12px 12px; } fieldset:disabled { border: 0; padding: 0; }
    fieldset.secret-row { align-items: end; } legend { font-weight: 600; }
    textarea.short { min-height: 5rem; max-width: 40rem; } .field-help { margin: .25rem 0 0; font-size: .9rem; }
    dl.facts dd { overflow-wrap: anywhere; min-width: 0; } ul.kinds li { margin: .5rem 0; } code.excerpt { white-space: pre-wrap; word-break: break-word; font-size: .8rem; }
    @media (max-width: 640px) { header.top nav ul { flex-wrap: wrap; gap: 8px 16px; } svg.spark { width: 72px; } }
    /* plans */
    #plan-form fieldset { margin: 1rem 0; } #plan-form legend { font-weight: 700; padding: 0 4px; }
    #plan-form fieldset.row-set { border-style: dashed; } .days { display: flex; flex-wrap: wrap; gap: 4px 12px; margin-top: .5rem; }
    input[type=number], input[type=time], input[type=datetime-local] { font: inherit; padding: 6px 8px; border: 1px solid #6e7781; border-radius: 4px; width: 100%; max-width: 20rem; }
    .hint { margin: 0 0 .25rem; color: var(--muted); font-size: .9rem; }
    .field-error { color: var(--bad); font-weight: 600; margin: .25rem 0 0; } .field-error:empty { display: none; }
    [aria-invalid="true"] { border-color: var(--bad) !important; border-width: 2px !important; }
    .ok { border-left: 4px solid var(--ok); background: #dafbe1; padding: 8px 12px; }
    #preview { background: var(--panel); padding: 4px 12px; margin-top: 1rem; border-radius: 4px; } #preview h2 { margin-top: .5rem; font-size: 1.05rem; }
    ol.fires li { margin: 2px 0; } details.danger-zone { margin: 1rem 0; } details.danger-zone form { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
    .s-active, .s-dispatched { background: var(--run); } .s-paused, .s-queued, .s-skipped { background: var(--warn); } .s-finished, .s-ended { background: var(--ok); }
    .s-cancelled { background: var(--gone); }
    [hidden] { display: none !important; }
    ul.choices { list-style: none; padding: 0; margin: .25rem 0; display: flex; flex-wrap: wrap; gap: 6px 18px; }
    ul.choices li { display: flex; align-items: center; min-height: 44px; }
    dl.plan-facts { grid-template-columns: max-content minmax(0, 1fr); } dl.plan-facts dd { overflow-wrap: anywhere; }
    @media (max-width: 640px) { .days label { min-width: 3.5rem; } dl.plan-facts { grid-template-columns: 1fr; } dl.plan-facts dd { margin-bottom: 6px; } }
    """#

    /// Plain JavaScript: loads an uploaded file into the import form, and draws an execution's
    /// timeline from its server-sent events (replayed from the start, then live).
    static let js = #"""
    "use strict";
    (function () {
      var file = document.getElementById("source-file");
      if (file) {
        file.addEventListener("change", function () {
          var chosen = file.files && file.files[0];
          if (!chosen) return;
          chosen.text().then(function (text) {
            document.getElementById("source").value = text;
            document.getElementById("file-name").value = chosen.name;
          });
        });
      }

      var timeline = document.getElementById("timeline");
      if (!timeline || !window.EventSource) return;
      var statusText = document.getElementById("run-status");
      var rows = [], open = {}, first = null, last = null;

      function row(kind, name, phase, start) {
        var li = document.createElement("li");
        var label = document.createElement("span"); label.className = "label";
        var title = document.createElement("span"); title.textContent = name;
        var sub = document.createElement("span"); sub.className = "phase";
        label.appendChild(title); label.appendChild(sub);
        var track = document.createElement("span"); track.className = "track";
        var bar = document.createElement("span"); bar.className = "bar running";
        track.appendChild(bar); li.appendChild(label); li.appendChild(track);
        timeline.appendChild(li);
        var r = { kind: kind, name: name, phase: phase, start: start, end: null, state: "running", li: li, bar: bar, sub: sub };
        rows.push(r); describe(r); return r;
      }
      function describe(r) {
        var seconds = r.end !== null ? " · " + ((r.end - r.start) / 1e6).toFixed(2) + " s" : "";
        r.sub.textContent = r.phase + " · " + r.state.replace("-", " ") + seconds;
        r.bar.className = "bar " + r.state;
        r.li.setAttribute("data-state", r.state);
      }
      function layout() {
        if (first === null) return;
        var span = Math.max(last - first, 1);
        rows.forEach(function (r) {
          var end = r.end !== null ? r.end : last;
          r.bar.style.left = ((r.start - first) / span * 100) + "%";
          r.bar.style.width = Math.max((end - r.start) / span * 100, 0.5) + "%";
        });
      }
      function key(kind, name, phase) { return kind + "\u0000" + name + "\u0000" + phase; }

      function onEvent(event) {
        var t = event.occurred_at_us, p = event.payload || {};
        if (first === null) first = t;
        last = Math.max(last || t, t);
        var r;
        switch (event.type) {
          case "hypothesis-before":
            open[key("h", "", p.phase)] = row("hypothesis", "Steady state: " + (p.title || "hypothesis"), "hypothesis " + (p.phase || ""), t);
            break;
          case "hypothesis-after":
            r = open[key("h", "", p.phase)];
            if (r) { r.end = t; r.state = p.steady_state_met ? "met" : "not-met"; describe(r); }
            break;
          case "activity-before":
            open[key("a", p.name, p.phase)] = row("activity", (p.activity_type || "activity") + ": " + (p.name || "?"), p.phase || "", t);
            break;
          case "activity-after":
            r = open[key("a", p.name, p.phase)];
            if (r) { r.end = t; r.state = p.status === "succeeded" ? "succeeded" : "failed"; describe(r); delete open[key("a", p.name, p.phase)]; }
            break;
          case "paused":
            r = row("pause", "Paused", "user request", t); r.state = "paused"; describe(r); open.pause = r;
            break;
          case "resumed":
            if (open.pause) { open.pause.end = t; describe(open.pause); delete open.pause; }
            break;
        }
        layout();
      }

      var source = new EventSource(timeline.getAttribute("data-stream"));
      source.addEventListener("event", function (e) { onEvent(JSON.parse(e.data)); });
      source.addEventListener("execution", function (e) {
        var execution = JSON.parse(e.data);
        statusText.textContent = "Status: " + execution.status.replace("_", " ");
        timeline.setAttribute("data-status", execution.status);
      });
      source.addEventListener("end", function () {
        source.close();
        timeline.setAttribute("data-ended", "true");
        statusText.textContent += " (run ended)";
        // A page opened during the run reloads once, for the journal and log.
        if (timeline.getAttribute("data-live") === "true") window.location.reload();
      });
      source.addEventListener("error", function (e) {
        if (e.data) { source.close(); statusText.textContent = "The live stream failed; reload the page."; }
      });
    })();
    // Plans: times in the viewer's zone, and the plan form's live preview.
    (function () {
      var zoneName = "";
      try { zoneName = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zoneName = ""; }
      function local(iso) {
        var date = new Date(iso);
        if (isNaN(date.getTime())) return null;
        var text = date.toLocaleString(undefined, { weekday: "short", year: "numeric", month: "short", day: "numeric",
                                                    hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
        return zoneName && text.indexOf(zoneName) < 0 ? text + " (" + zoneName + ")" : text;
      }
      function localise(root) {
        var times = root.querySelectorAll("time[data-local]");
        for (var i = 0; i < times.length; i++) {
          var text = local(times[i].getAttribute("datetime"));
          if (text) { times[i].title = times[i].textContent; times[i].textContent = text; }
        }
      }
      localise(document);

      // A plan's history refreshes itself while its page is visible: every 5 s, backing off to a
      // minute on errors, stopped for good after 10 failures in a row or when the plan is gone.
      // The page reads the same without it (a Refresh link).
      var historyStatus = document.getElementById("history-status");
      var region = document.getElementById("history-region");
      if (historyStatus && region && window.fetch) {
        var base = 5000, delay = base, failures = 0, pollTimer = null, inFlight = false, stopped = false, replaced = 0;
        var live = "Updates itself while this page is open.";
        function schedule() {
          if (pollTimer) clearTimeout(pollTimer);
          pollTimer = stopped || document.hidden ? null : setTimeout(poll, delay);
        }
        function stop(text) {
          stopped = true;
          if (pollTimer) clearTimeout(pollTimer);
          pollTimer = null;
          historyStatus.textContent = text;
        }
        function show(html) {
          // Compared once localised like the page, so an unchanged history leaves the page alone.
          var next = document.createElement("div");
          next.innerHTML = html;
          localise(next);
          if (next.innerHTML === region.innerHTML) return;
          region.innerHTML = next.innerHTML;
          region.setAttribute("data-replaced", String(++replaced));
        }
        function poll() {
          pollTimer = null;
          inFlight = true;
          fetch(historyStatus.getAttribute("data-poll"), { credentials: "same-origin", redirect: "manual", cache: "no-store" })
            .then(function (response) {
              // Signed out (a redirect to the sign-in page), or the plan is gone: retrying cannot help.
              if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403 || response.status === 404) return null;
              if (!response.ok) throw new Error("HTTP " + response.status);
              return response.text();
            })
            .then(function (html) {
              inFlight = false;
              if (html === null) { stop("Updates stopped: reload the page."); return; }
              failures = 0;
              delay = base;
              show(html);
              historyStatus.textContent = live;
              schedule();
            })
            .catch(function () {
              inFlight = false;
              if (++failures >= 10) { stop("Updates stopped after repeated errors: reload the page."); return; }
              delay = Math.min(delay * 2, 60000);
              historyStatus.textContent = "Updating failed; trying again in " + Math.round(delay / 1000) + " s.";
              schedule();
            });
        }
        document.addEventListener("visibilitychange", function () {
          if (document.hidden) {
            if (pollTimer) clearTimeout(pollTimer);
            pollTimer = null;
          } else if (!stopped && !pollTimer && !inFlight) {
            poll();
          }
        });
        historyStatus.textContent = live;
        schedule();
      }

      var form = document.getElementById("plan-form");
      if (!form) return;
      var zone = document.getElementById("time_zone");
      if (zone && !zone.value && zoneName && form.getAttribute("action") === "/console/plans") zone.value = zoneName;

      function showKind() {
        var checked = form.querySelector("input[name=kind]:checked");
        var kind = checked ? checked.value : "";
        var parts = form.querySelectorAll("[data-kind]");
        for (var i = 0; i < parts.length; i++) parts[i].hidden = parts[i].getAttribute("data-kind") !== kind;
      }
      showKind();

      var description = document.getElementById("preview-description");
      var list = document.getElementById("preview-fires");
      var marked = null, timer = null, sequence = 0;
      function mark(field, message) {
        if (marked) {
          var old = document.getElementById(marked + "-error");
          if (old) old.textContent = "";
          var oldInput = document.getElementById(marked);
          if (oldInput) oldInput.removeAttribute("aria-invalid");
          marked = null;
        }
        if (!field) return;
        var slot = document.getElementById(field + "-error");
        if (slot) slot.textContent = message;
        var input = document.getElementById(field);
        if (input) input.setAttribute("aria-invalid", "true");
        marked = field;
      }
      function render(answer) {
        list.textContent = "";
        var none = document.getElementById("preview-fires-none");
        if (none) none.remove();
        if (answer.error) {
          description.textContent = answer.error.message;
          description.className = "error";
          mark(answer.error.field, answer.error.message);
          return;
        }
        mark(null);
        description.className = "";
        description.textContent = answer.fires.length ? answer.description : answer.description + ": it never fires.";
        answer.fires.forEach(function (fire) {
          var li = document.createElement("li");
          var time = document.createElement("time");
          time.setAttribute("datetime", fire.at);
          time.textContent = local(fire.at) || fire.at;
          li.appendChild(time);
          if (fire.zone_text) {
            var plan = document.createElement("span");
            plan.className = "muted";
            plan.textContent = " (" + fire.zone_text + ")";
            li.appendChild(plan);
          }
          list.appendChild(li);
        });
        form.setAttribute("data-previewed", String(sequence));
      }
      function refresh() {
        var mine = ++sequence;
        fetch(form.getAttribute("data-preview"), { method: "POST", credentials: "same-origin",
                                                   body: new URLSearchParams(new FormData(form)) })
          .then(function (response) {
            if (!response.ok) throw new Error("HTTP " + response.status);
            return response.json();
          })
          .then(function (answer) { if (mine === sequence) render(answer); })
          .catch(function () {
            if (mine === sequence) { description.textContent = "The preview is unavailable; reload the page."; description.className = "error"; }
          });
      }
      function changed(event) {
        if (event.target && event.target.name === "kind") showKind();
        if (timer) clearTimeout(timer);
        timer = setTimeout(refresh, 250);
      }
      form.addEventListener("input", changed);
      form.addEventListener("change", changed);
      refresh();
    })();
    """#
}
