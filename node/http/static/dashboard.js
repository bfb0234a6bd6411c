/* PicoGrid dashboard: polls this node's read-only JSON API and draws the kit, charts and tables.
 *
 * Plain JavaScript, no libraries, no build step: everything the page needs comes from the node
 * that serves it, so it works on a Pi with no internet. Units on the wire: energy in Wh, money in
 * milli-cents, prices in milli-cents per kWh.
 */
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const HOMES = ["Home 1", "Home 2", "Home 3"];
  // Where each agent sits on the kit's board, as hardware/led_map.py places them: by name (or
  // alias) first, then the remaining agents of each role on the free places, in list order.
  const SLOTS = {
    consumer: { "Home 1": ["home 1"], "Home 2": ["home 2"], "Home 3": ["home 3"] },
    storage: {
      "Home battery": ["home battery", "storage 1"],
      "Neighbourhood battery": ["neighbourhood battery", "neighborhood battery", "storage 2"],
    },
    generator: {
      "Home solar": ["home solar", "generation 1"],
      "Community solar": ["community solar", "generation 2"],
    },
  };
  // Where energy flows start and end on the board (SVG user units); flows run under the parts.
  const ANCHORS = {
    grid: [96, 232],
    "Community solar": [350, 83],
    "Neighbourhood battery": [680, 92],
    "Home battery": [218, 372],
    "Home solar": [386, 288],
    "Home 1": [355, 372],
    "Home 2": [585, 372],
    "Home 3": [815, 372],
  };
  // Flows inside Home 1's household get their own short routes beside the house.
  const ROUTES = {
    "Home solar>Home 1": [[394, 292], [474, 300], [472, 378], [414, 384]],
    "Home battery>Home 1": [[246, 372], [268, 372], [276, 380], [296, 384]],
  };
  const BAND_Y = 205; // flows bend through this horizontal band between the top and bottom rows
  const FLOW_KIND = { generator: "solar", storage: "battery", consumer: "home", grid: "grid" };
  const COLORS = {
    generation: "#22c55e",
    demand: "#3b82f6",
    import: "#ef4444",
    export: "#0ea5e9",
    price: "#0f766e",
    retail: "#ef4444",
    community: "#3b82f6",
    feedIn: "#22c55e",
    batteries: ["#f59e0b", "#8b5cf6", "#ec4899", "#14b8a6"],
  };
  const TRADE_ROWS = 80;

  const state = {
    info: null,
    agents: [],
    community: null,
    communityAt: 0,
    summary: null,
    window: null, // [from, to] of the charts
    view: null, // the interval shown on the board
    pinned: null, // an interval the user chose, or null to follow the latest settled one
    trades: [],
    tradesKey: "",
    seenTrades: new Set(),
    audits: {}, // agent id -> {status, length, problems} | {running} | {error}
    ok: false,
    error: null, // why the last refresh failed, when the node said (503: another grid unavailable)
  };

  // -- small helpers -------------------------------------------------------------------------

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const byAttr = (attr, value, root = document) =>
    $$(`[${attr}]`, root).find((el) => el.getAttribute(attr) === value) || null;

  function svg(tag, attrs = {}, parent = null, text = null) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    if (text !== null) el.textContent = text;
    if (parent) parent.appendChild(el);
    return el;
  }

  function html(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) el.append(c);
    return el;
  }

  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }

  const nf = new Intl.NumberFormat("en-US");
  const nf1 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

  function fmtWh(wh) {
    if (wh === null || wh === undefined) return "–";
    return Math.abs(wh) >= 10000 ? `${nf1.format(wh / 1000)} kWh` : `${nf.format(wh)} Wh`;
  }

  function fmtMoney(mc) {
    if (mc === null || mc === undefined) return "–";
    const cents = mc / 1000;
    return `${Math.abs(cents) >= 100 ? nf.format(Math.round(cents)) : nf1.format(cents)} ¢`;
  }

  function fmtPrice(mcPerKwh) {
    return mcPerKwh === null || mcPerKwh === undefined ? "–" : `${nf1.format(mcPerKwh / 1000)} ¢/kWh`;
  }

  function fmtPct(ratio) {
    return ratio === null || ratio === undefined ? "–" : `${Math.round(ratio * 100)}%`;
  }

  function ago(us) {
    if (!us) return "never";
    const s = Math.max(0, Math.round(Date.now() - us / 1000) / 1000);
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  const shortHash = (h, n = 8) => (h ? `${h.slice(0, n)}…` : "");

  function charter() {
    return state.community && state.community.charter ? state.community.charter : null;
  }

  /** "12:00" for the demo's sped-up day (an interval stands for an hour), else the start time. */
  function intervalTime(k) {
    const c = charter();
    if (!c || k === null || k === undefined) return "";
    if (c.interval_ms < 60000) return `${String(((k % 24) + 24) % 24).padStart(2, "0")}:00`;
    const start = new Date((c.epoch_us + k * c.interval_ms * 1000) / 1000);
    if (c.interval_ms >= 86400000) return start.toLocaleDateString([], { month: "short", day: "numeric" });
    return start.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function intervalName(k) {
    const t = intervalTime(k);
    return t ? `${k} · ${t}` : String(k);
  }

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // A closed community's node answers its owner's dashboard when the page is opened once as
  // http://NODE/#token=TOKEN (the node's dashboard.token): the token is kept in this browser and
  // sent with every request; it never goes into a URL the node sees.
  const TOKEN_KEY = "picogrid-token";
  const hashParams = new URLSearchParams(location.hash.slice(1));
  const fromHash = hashParams.get("token");
  if (fromHash) {
    localStorage.setItem(TOKEN_KEY, fromHash);
    hashParams.delete("token");
    const rest = hashParams.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }

  // http://NODE/#grid=NAME shows another grid of the community: a node that keeps its own grid
  // only fetches that grid's chains from its nodes (503 while none answers: the error is shown).
  function viewGrid() {
    const asked = new URLSearchParams(location.hash.slice(1)).get("grid");
    return asked || (state.info ? state.info.grid : null);
  }
  window.addEventListener("hashchange", () => {
    state.summary = state.view = state.tradesKey = null;
    tick();
  });

  function apiHeaders() {
    const token = localStorage.getItem(TOKEN_KEY);
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    return headers;
  }

  async function api(path) {
    const resp = await fetch(path, { cache: "no-store", headers: apiHeaders() });
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      body = null;
    }
    if (!resp.ok) throw new HttpError(resp.status, (body && body.error) || `HTTP ${resp.status}`);
    return body;
  }

  // -- the board: who sits where --------------------------------------------------------------

  function gridAgents() {
    const grid = viewGrid();
    return state.agents.filter((a) => a.grid === grid);
  }

  /** slot ("Home 1", "Home battery", ...) -> agent, the same placement as the kit's LEDs. */
  function placement() {
    const agents = gridAgents();
    const placed = {};
    for (const [role, slots] of Object.entries(SLOTS)) {
      const free = agents.filter((a) => a.role === role);
      for (const [slot, aliases] of Object.entries(slots)) {
        const i = free.findIndex((a) => aliases.includes(String(a.name).toLowerCase()));
        if (i >= 0) placed[slot] = free.splice(i, 1)[0];
      }
      for (const slot of Object.keys(slots)) if (!placed[slot] && free.length) placed[slot] = free.shift();
    }
    return placed;
  }

  // -- rendering: header ----------------------------------------------------------------------

  function renderHeader() {
    const info = state.info;
    if (info) {
      setText($("#community"), info.community);
      setText($("#grid"), viewGrid() === info.grid ? info.grid : `${viewGrid()} (seen from grid ${info.grid})`);
      setText($("#node-name"), info.name);
      document.title = `PicoGrid · ${info.name}`;
    }
    // the header names the interval the board shows (or, before the first, the one to come)
    const shown = state.view ? state.view.interval : charter() ? nextToSettle() : null;
    const head = $("#current-interval");
    setText(head, shown === null ? "–" : String(shown));
    head.setAttribute("data-header-interval", shown === null ? "" : String(shown));
    setText($("#current-time"), shown === null ? "" : intervalTime(shown));
    setText($("#current-rel"), state.view ? relationOf(state.view.interval) : shown === null ? "" : "first");
    renderCountdown();
    const live = $("#live");
    live.dataset.state = state.ok ? "live" : state.info ? "offline" : "connecting";
    const why = state.error ? ` (${state.error})` : "";
    setText(
      $("#live-text"),
      state.ok ? `live · ${new Date().toLocaleTimeString([], { hour12: false })}` : state.info ? `offline · retrying${why}` : "connecting…",
    );
  }

  // -- rendering: the kit ---------------------------------------------------------------------

  function renderBoard() {
    const view = state.view;
    const board = $("#board");
    const leds = view && view.leds ? view.leds : {};
    board.setAttribute("data-interval", view && Object.keys(leds).length ? String(view.interval) : "");
    for (const el of $$("[data-led]", board)) {
      const mode = leds[el.getAttribute("data-led")] || "off";
      if (el.getAttribute("data-mode") !== mode) el.setAttribute("data-mode", mode);
      const title = el.querySelector("title");
      if (title) {
        if (!title.dataset.base) title.dataset.base = title.textContent;
        setText(title, `${title.dataset.base}: ${mode}`);
      }
    }
    const caption = $("#board-caption");
    if (!view) {
      setText(caption, "waiting for the first settled interval…");
    } else {
      const trades = view.trades.length;
      const bits = [`interval ${intervalName(view.interval)}`, view.phase, `${trades} trade${trades === 1 ? "" : "s"}`];
      const rel = relationOf(view.interval);
      if (rel) bits.push(rel);
      setText(caption, bits.join(" · "));
    }
    $("#follow-live").setAttribute("aria-pressed", state.pinned === null ? "true" : "false");
    const card = $("#board-card");
    const drawing = drawingOf(viewGrid());
    if (card.dataset.drawing !== drawing) card.dataset.drawing = drawing;
    setText($("#board-title"), drawing === "kit" ? "The kit" : `Grid ${viewGrid() || ""}`);
    $("#board").setAttribute("aria-hidden", drawing === "kit" ? "false" : "true");
    renderFirstInterval();
    if (drawing === "kit") {
      renderParts(view);
      renderFlows(view);
    }
    renderHouseholds(view);
  }

  /** "kit" when this grid has the kit's shape (the API says so), else "generic". */
  function drawingOf(grid) {
    const g = state.community && grid ? state.community.grids[grid] : null;
    return g && g.drawing === "generic" ? "generic" : "kit";
  }

  /** How interval k stands to the one in progress: "now", "up next", "pinned" or "". */
  function relationOf(k) {
    if (state.pinned !== null) return "pinned";
    const cur = state.summary ? state.summary.current : null;
    if (cur === null) return "";
    return k > cur ? "up next" : k === cur ? "now" : "";
  }

  /** An agent's display name: the views' `names` tell two agents of one name apart. */
  function labelOf(id, fallback) {
    const fromView = state.view && state.view.names ? state.view.names[id] : null;
    const fromSummary = state.summary && state.summary.names ? state.summary.names[id] : null;
    const fromCommunity = state.community && state.community.names ? state.community.names[id] : null;
    if (fromView || fromSummary || fromCommunity) return fromView || fromSummary || fromCommunity;
    const agent = state.agents.find((a) => a.id === id);
    return agent ? agent.name : fallback || String(id).slice(0, 8);
  }

  function renderParts(view) {
    const placed = placement();
    const figures = view && view.agents ? view.agents : {};
    const capacity = {};
    for (const a of state.agents) capacity[a.id] = a.capacity_wh;
    for (const [slot, agent] of Object.entries(
      Object.fromEntries(Object.keys(ANCHORS).filter((s) => s !== "grid").map((s) => [s, placed[s] || null])),
    )) {
      const name = agent ? agent.id : slot;
      const f = agent ? figures[agent.id] : null;
      const label = byAttr("data-name-of", slot);
      setText(label, agent ? labelOf(agent.id, agent.name) : "");
      const value = byAttr("data-value-of", slot);
      let text = "";
      if (f && HOMES.includes(slot)) {
        text = `uses ${fmtWh(f.demand_wh)}`;
        renderShares(slot, f);
      } else if (f && "soc_wh" in f) {
        const cap = capacity[name] || 0;
        const pct = cap ? Math.max(0, Math.min(1, f.soc_wh / cap)) : 0;
        const fill = byAttr("data-fill-of", slot);
        const max = Number(fill.getAttribute("data-max"));
        const bottom = Number(fill.getAttribute("y")) + Number(fill.getAttribute("height"));
        const h = Math.round(max * pct * 10) / 10;
        fill.setAttribute("height", String(h));
        fill.setAttribute("y", String(bottom - h));
        setText(byAttr("data-pct-of", slot), cap ? fmtPct(pct) : "–");
        if (f.charged_wh > 0) text = `charging ${fmtWh(f.charged_wh)}`;
        else if (f.discharged_wh > 0) text = `discharging ${fmtWh(f.discharged_wh)}`;
        else text = f.soc_wh > 0 ? `idle · ${fmtWh(f.soc_wh)}` : "empty";
      } else if (f && "generation_wh" in f) {
        text = f.generation_wh > 0 ? `makes ${fmtWh(f.generation_wh)}` : "no sun";
      } else if (HOMES.includes(slot)) {
        renderShares(slot, null);
      }
      setText(value, text);
    }
    const made = view ? Object.values(view.agents || {}).reduce((acc, f) => acc + (f.generation_wh || 0), 0) : 0;
    $(".sky").setAttribute("data-daylight", made > 0 ? "day" : "night");
    setText($("#sky-time"), view ? intervalTime(view.interval) || `#${view.interval}` : "–");
    setText($("#sky-note"), view ? `interval ${view.interval} · ${view.phase}` : "waiting for a settled interval");
    const gridValue = $("#grid-value");
    setText(gridValue, view ? `in ${fmtWh(view.grid_import_wh)} · out ${fmtWh(view.grid_export_wh)}` : "");
  }

  function renderShares(slot, f) {
    const bar = byAttr("data-share-of", slot);
    if (!bar) return;
    bar.replaceChildren();
    const width = 74;
    const total = f ? f.demand_wh : 0;
    if (!total) {
      svg("rect", { x: 0, y: 0, width, height: 5, class: "empty" }, bar);
      return;
    }
    let x = 0;
    for (const [kind, key] of [["grid", "from_grid_wh"], ["battery", "from_storage_wh"], ["solar", "from_generation_wh"]]) {
      const w = (width * (f[key] || 0)) / total;
      if (w <= 0) continue;
      const r = svg("rect", { x: x.toFixed(1), y: 0, width: Math.max(0, w - 1).toFixed(1), height: 5, class: kind }, bar);
      svg("title", {}, r, `${kind}: ${fmtWh(f[key])}`);
      x += w;
    }
  }

  // -- the clock: when the next interval settles ----------------------------------------------

  /** Interval k's times in µs, as the charter sets them (market/intervals.py). */
  function timesOf(k) {
    const c = charter();
    const start = c.epoch_us + k * c.interval_ms * 1000;
    const gate = start - c.lead_ms * 1000;
    return { start, end: start + c.interval_ms * 1000, gate, settle: gate + c.grace_ms * 1000 };
  }

  /** The first interval whose settlement is still to come. */
  function nextToSettle() {
    const now = Date.now() * 1000;
    let k = estimateCurrent();
    for (let i = 0; i < 8 && timesOf(k).settle <= now; i++) k++;
    return k;
  }

  function fmtIn(us) {
    const s = Math.max(0, Math.ceil(us / 1e6));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${String(m % 60).padStart(2, "0")} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  function clockAt(us) {
    const c = charter();
    const d = new Date(us / 1000);
    const t = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
    return c && c.interval_ms >= 86400000 ? `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${t}` : t;
  }

  function renderCountdown() {
    const box = $("#countdown");
    if (!charter()) {
      setText(box, "");
      return;
    }
    const k = nextToSettle();
    const t = timesOf(k);
    const now = Date.now() * 1000;
    const text = now < t.gate ? `orders for ${k} close in ${fmtIn(t.gate - now)}` : `${k} settles in ${fmtIn(t.settle - now)}`;
    setText(box, text);
    box.setAttribute("data-countdown", String(k));
  }

  /** Before anything settled: what happens, and when, for the first interval to come. */
  function renderFirstInterval() {
    const panel = $("#first-interval");
    const waiting = !!charter() && !state.view && !(state.summary && state.summary.series.length);
    panel.hidden = !waiting;
    if (!waiting) return;
    const k = nextToSettle();
    const t = timesOf(k);
    const now = Date.now() * 1000;
    const c = charter();
    const fast = c.interval_ms < 60000; // the demo's pace: relative times say more
    const at = (us) => (fast ? `in ${fmtIn(us - now)}` : `at ${clockAt(us)} (in ${fmtIn(us - now)})`);
    setText($("#first-clock"), fmtIn((now < t.gate ? t.gate : t.settle) - now));
    $("#first-clock").setAttribute("data-first-interval", String(k));
    setText($("#first-title"), `Nothing has settled yet: interval ${intervalName(k)} is the first`);
    const members = gridAgents().length;
    setText(
      $("#first-text"),
      `Each of the ${members} member node${members === 1 ? "" : "s"} of this grid signs an offer or a bid for it; ` +
        `orders close ${now < t.gate ? at(t.gate) : "now"}. Every node then clears the same order book and signs ` +
        `its settlement ${at(t.settle)}: the drawing, the trades and the bills fill in then. ` +
        `The interval runs until ${clockAt(t.end)}; the meters' signed readings follow.`,
    );
  }

  // -- the generic drawing: this grid's agents by household ----------------------------------------

  const ROLE_WORD = { consumer: "home", storage: "battery", generator: "solar" };
  const PLURAL = { consumer: ["home", "homes"], storage: ["battery", "batteries"], generator: ["solar system", "solar systems"] };

  /** The LED modes the kit would show for one agent (hardware/led_map.py's rules). */
  function ledsOf(agent, f, view) {
    if (!f) return agent.role === "consumer" ? [["red", "off"], ["orange", "off"], ["green", "off"]] : [["green", "off"]];
    if (agent.role === "consumer") {
      return [["red", "from_grid_wh"], ["orange", "from_storage_wh"], ["green", "from_generation_wh"]].map(([c, k]) => [c, f[k] > 0 ? "solid" : "off"]);
    }
    if (agent.role === "storage") return [["green", f.charged_wh > 0 || f.discharged_wh > 0 ? "flashing" : f.soc_wh > 0 ? "solid" : "off"]];
    if (!(f.generation_wh > 0)) return [["green", "off"]];
    const own = gridAgents().filter((a) => a.household === agent.household && a.id !== agent.id);
    const took = own.some((a) => {
      const g = (view.agents || {})[a.id] || {};
      return (a.role === "consumer" && g.from_generation_wh > 0) || (a.role === "storage" && g.charged_wh > 0);
    });
    return [["green", f.sold_wh > 0 || took ? "flashing" : "solid"]];
  }

  function icon(role, pct) {
    const s = svg("svg", { viewBox: "0 0 40 40", class: `m-icon ${role}`, "aria-hidden": "true" });
    if (role === "consumer") {
      svg("path", { d: "M5 19 20 6l15 13", class: "roof" }, s);
      svg("rect", { x: 9, y: 17, width: 22, height: 18, class: "wall" }, s);
      svg("rect", { x: 22, y: 25, width: 5, height: 10, class: "door" }, s);
    } else if (role === "storage") {
      svg("rect", { x: 16, y: 4, width: 8, height: 4, rx: 1, class: "terminal" }, s);
      svg("rect", { x: 10, y: 7, width: 20, height: 29, rx: 4, class: "battery-body" }, s);
      const h = Math.round(23 * Math.max(0, Math.min(1, pct || 0)));
      svg("rect", { x: 13, y: 33 - h, width: 14, height: h, rx: 2, class: "battery-fill" }, s);
    } else {
      svg("circle", { cx: 30, cy: 9, r: 5, class: "sun-dot" }, s);
      svg("path", { d: "M6 34 12 16h20l-6 18z", class: "roof-panel" }, s);
      svg("path", { d: "M9 25h20M19 16l-4 18", class: "panel-line" }, s);
    }
    return s;
  }

  function memberText(agent, f, cap) {
    if (!f) return state.view ? "not in this interval" : "no interval yet";
    if (agent.role === "consumer") return `uses ${fmtWh(f.demand_wh)}`;
    if (agent.role === "storage") {
      const pct = cap ? ` · ${fmtPct(Math.max(0, Math.min(1, f.soc_wh / cap)))}` : "";
      if (f.charged_wh > 0) return `charging ${fmtWh(f.charged_wh)}${pct}`;
      if (f.discharged_wh > 0) return `discharging ${fmtWh(f.discharged_wh)}${pct}`;
      return f.soc_wh > 0 ? `idle · ${fmtWh(f.soc_wh)}${pct}` : "empty";
    }
    if (!(f.generation_wh > 0)) return "makes nothing";
    return `makes ${fmtWh(f.generation_wh)}${f.sold_wh > 0 ? ` · sells ${fmtWh(f.sold_wh)}` : ""}`;
  }

  function shareBar(f) {
    const bar = html("div", { class: "m-share" });
    const total = f ? f.demand_wh : 0;
    for (const [kind, key] of [["grid", "from_grid_wh"], ["battery", "from_storage_wh"], ["solar", "from_generation_wh"]]) {
      const v = f ? f[key] || 0 : 0;
      if (!total || v <= 0) continue;
      const part = html("i", { class: kind, title: `${kind}: ${fmtWh(v)}` });
      part.style.width = `${((100 * v) / total).toFixed(1)}%`; // CSSOM: the page's CSP forbids style attributes
      bar.append(part);
    }
    return bar;
  }

  /** Households in drawing order: those with homes first (by name), shared assets last. */
  function households(agents) {
    const by = new Map();
    for (const a of agents) {
      if (!by.has(a.household)) by.set(a.household, []);
      by.get(a.household).push(a);
    }
    const rank = (h) => (h === "community" ? 2 : by.get(h).some((a) => a.role === "consumer") ? 0 : 1);
    const names = Array.from(by.keys()).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    return names.map((h) => [h, by.get(h).sort((a, b) => (ROLE_ORDER[a.role] ?? 9) - (ROLE_ORDER[b.role] ?? 9) || labelOf(a.id, a.name).localeCompare(labelOf(b.id, b.name)))]);
  }

  function renderHouseholds(view) {
    const box = $("#households");
    const agents = gridAgents();
    const figures = view && view.agents ? view.agents : {};
    const key = JSON.stringify([agents.map((a) => [a.id, labelOf(a.id, a.name), a.household, a.role]), view ? [view.interval, view.phase, figures, view.grid_import_wh, view.grid_export_wh] : null]);
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    const utility = html(
      "div",
      { class: "utility" },
      html("b", {}, "Utility grid"),
      html("span", { class: "m-value" }, view ? `in ${fmtWh(view.grid_import_wh)} · out ${fmtWh(view.grid_export_wh)}` : "imports and exports settle here"),
    );
    const houses = households(agents).map(([h, members]) =>
      html(
        "section",
        { class: `household${h === "community" ? " shared" : ""}`, "data-household": h },
        html("h4", {}, h === "community" ? "Community" : h, html("span", { class: "sub" }, h === "community" ? " shared by all" : " household")),
        ...members.map((a) => {
          const f = figures[a.id] || null;
          const pct = f && a.capacity_wh ? f.soc_wh / a.capacity_wh : 0;
          const leds = html("span", { class: "m-leds" });
          for (const [color, mode] of ledsOf(a, f, view)) {
            const dot = svg("svg", { viewBox: "0 0 16 16" }, null);
            svg("circle", { cx: 8, cy: 8, r: 5.5, class: `led ${color}`, "data-mode": mode }, dot);
            leds.append(dot);
          }
          return html(
            "div",
            { class: "member", "data-member": a.id, "data-role": a.role },
            icon(a.role, pct),
            html(
              "div",
              { class: "m-body" },
              html("div", { class: "m-name", title: `${a.role} · ${a.id}` }, labelOf(a.id, a.name)),
              html("div", { class: "m-value" }, `${ROLE_WORD[a.role] || a.role} · ${memberText(a, f, a.capacity_wh)}`),
              a.role === "consumer" ? shareBar(f) : null,
            ),
            leds,
          );
        }),
      ),
    );
    if (!agents.length) houses.push(html("p", { class: "hint" }, "No agent of this grid is known yet."));
    box.replaceChildren(utility, html("div", { class: "hh-list" }, ...houses));
  }

  /** The interval's energy flows: its trades (seller -> buyer) and each agent's grid exchange. */
  function flowsOf(view) {
    if (!view) return [];
    const placed = placement();
    const slotOf = {};
    const roleOf = {};
    for (const [slot, agent] of Object.entries(placed)) {
      slotOf[agent.id] = slot;
      roleOf[agent.id] = agent.role;
    }
    const flows = new Map();
    const add = (from, to, kind, wh) => {
      if (!from || !to || from === to || wh <= 0) return;
      const key = `${from}>${to}`;
      const f = flows.get(key) || { from, to, kind, wh: 0 };
      f.wh += wh;
      flows.set(key, f);
    };
    for (const t of view.trades) {
      add(slotOf[t.seller], slotOf[t.buyer], FLOW_KIND[roleOf[t.seller]] || "home", t.energy_wh);
    }
    for (const [id, s] of Object.entries(view.settlements || {})) {
      add("grid", slotOf[id], "grid", s.grid_import_wh || 0);
      add(slotOf[id], "grid", FLOW_KIND[roleOf[id]] || "home", s.grid_export_wh || 0);
    }
    return Array.from(flows.values()).sort((a, b) => b.wh - a.wh);
  }

  function bezier(a, b) {
    const c1 = [a[0], BAND_Y];
    const c2 = [b[0], BAND_Y];
    if (a[1] < BAND_Y && b[1] < BAND_Y) {
      c1[1] = c2[1] = BAND_Y + 40;
    }
    return [a, c1, c2, b];
  }

  function pointAt(p, t) {
    const u = 1 - t;
    const x = u * u * u * p[0][0] + 3 * u * u * t * p[1][0] + 3 * u * t * t * p[2][0] + t * t * t * p[3][0];
    const y = u * u * u * p[0][1] + 3 * u * u * t * p[1][1] + 3 * u * t * t * p[2][1] + t * t * t * p[3][1];
    const dx = 3 * u * u * (p[1][0] - p[0][0]) + 6 * u * t * (p[2][0] - p[1][0]) + 3 * t * t * (p[3][0] - p[2][0]);
    const dy = 3 * u * u * (p[1][1] - p[0][1]) + 6 * u * t * (p[2][1] - p[1][1]) + 3 * t * t * (p[3][1] - p[2][1]);
    return { x, y, angle: (Math.atan2(dy, dx) * 180) / Math.PI };
  }

  let flowsKey = "";

  function renderFlows(view) {
    const flows = flowsOf(view);
    const key = flows.map((f) => `${f.from}>${f.to}:${f.wh}`).join("|");
    if (key === flowsKey) return;
    flowsKey = key;
    const layer = $("#flows");
    const labels = $("#flow-labels");
    layer.replaceChildren();
    labels.replaceChildren();
    const max = Math.max(1, ...flows.map((f) => f.wh));
    const used = [];
    for (const f of flows) {
      const p = ROUTES[`${f.from}>${f.to}`] || bezier(ANCHORS[f.from], ANCHORS[f.to]);
      const d = `M${p[0]}C${p[1]} ${p[2]} ${p[3]}`;
      const width = 3 + 7 * Math.sqrt(f.wh / max);
      svg("path", { d, class: `flow-bed ${f.kind}`, "stroke-width": (width + 4).toFixed(1) }, layer);
      const path = svg("path", { d, class: `flow ${f.kind}`, "stroke-width": width.toFixed(1), "data-flow": `${f.from}>${f.to}` }, layer);
      svg("title", {}, path, `${f.from === "grid" ? "Utility grid" : f.from} → ${f.to === "grid" ? "Utility grid" : f.to}: ${fmtWh(f.wh)}`);
      // the label sits on the curve, nudged along it when another label is already there
      let t = 0.5;
      let at = pointAt(p, t);
      for (const step of [0.12, -0.12, 0.22, -0.22, 0.3]) {
        if (!used.some((u) => Math.abs(u.x - at.x) < 64 && Math.abs(u.y - at.y) < 20)) break;
        t = 0.5 + step;
        at = pointAt(p, t);
      }
      used.push(at);
      const g = svg("g", { class: "flow-label", transform: `translate(${at.x.toFixed(1)} ${at.y.toFixed(1)})` }, labels);
      const text = fmtWh(f.wh);
      const w = 14 + text.length * 6.2;
      svg("rect", { x: (-w / 2).toFixed(1), y: -9, width: w.toFixed(1), height: 18, rx: 9 }, g);
      svg("text", { x: 0, y: 0.5 }, g, text);
      const tip = pointAt(p, Math.min(0.97, t + 0.1));
      svg("path", { d: "M-5 -5 5 0 -5 5z", class: `arrow-head ${f.kind}`, transform: `translate(${tip.x.toFixed(1)} ${tip.y.toFixed(1)}) rotate(${tip.angle.toFixed(1)})` }, labels);
    }
  }

  // -- rendering: KPIs -------------------------------------------------------------------------

  function renderKpis() {
    const s = state.summary;
    const k = s ? s.kpis : null;
    const ring = (id, ratio) => {
      const card = $(id);
      setText($(".kpi-value", card), fmtPct(ratio));
      const c = 2 * Math.PI * 32;
      const fg = $(".ring-fg", card);
      fg.style.strokeDasharray = `${(c * Math.max(0, Math.min(1, ratio || 0))).toFixed(1)} ${c.toFixed(1)}`;
      fg.style.opacity = ratio === null || ratio === undefined ? "0" : "1"; // no stray dot before data
    };
    ring("#kpi-self-sufficiency", k ? k.self_sufficiency : null);
    ring("#kpi-self-consumption", k ? k.self_consumption : null);
    const sv = k ? k.savings : null;
    const value = $("#kpi-savings .kpi-value");
    setText(value, sv ? fmtMoney(sv.saved) : "–");
    value.classList.toggle("neg", !!sv && sv.saved < 0);
    value.classList.toggle("pos", !!sv && sv.saved > 0);
    setText(
      $("#savings-note"),
      !sv
        ? "against buying everything from the grid"
        : `against ${fmtMoney(sv.baseline)} with the utility grid alone` +
            (sv.ratio > 0 && sv.ratio <= 1 ? ` (${fmtPct(sv.ratio)} of it)` : ""),
    );
    const series = s ? s.series : [];
    setText(
      $("#kpi-range"),
      series.length ? `intervals ${series[0].interval}–${series[series.length - 1].interval} (${series.length} settled)` : "",
    );
    const v = state.view;
    const sum = (key) => (v ? Object.values(v.agents || {}).reduce((acc, f) => acc + (f[key] || 0), 0) : null);
    setText($("#now-generation"), v ? fmtWh(sum("generation_wh")) : "–");
    setText($("#now-demand"), v ? fmtWh(sum("demand_wh")) : "–");
    setText($("#now-import"), v ? fmtWh(v.grid_import_wh) : "–");
    setText($("#now-export"), v ? fmtWh(v.grid_export_wh) : "–");
    if (v) {
      const counts = { confirmed: 0, pending: 0, disputed: 0, failed: 0 };
      for (const t of v.trades) counts[t.status] = (counts[t.status] || 0) + 1;
      const parts = [`${counts.confirmed} confirmed`];
      for (const s of ["pending", "disputed", "failed"]) if (counts[s]) parts.push(`${counts[s]} ${s}`);
      setText($("#now-trades"), parts.join(", "));
      setText($("#now-mechanism"), v.mechanism || "–");
      setText($("#now-book"), `${v.book.length} order${v.book.length === 1 ? "" : "s"}${v.late_or_excluded ? ` (+${v.late_or_excluded} late)` : ""}`);
      const digest = $("#now-digest");
      setText(digest, v.book_digest ? shortHash(v.book_digest, 8) : "–");
      digest.title = v.book_digest || "";
      setText($("#now-phase"), v.phase);
    }
  }

  // -- rendering: charts -----------------------------------------------------------------------

  function niceStep(range, ticks) {
    const raw = range / Math.max(1, ticks);
    const mag = 10 ** Math.floor(Math.log10(raw || 1));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
    return 10 * mag;
  }

  /**
   * One chart over the window's intervals. layers: {type: "bars"|"line"|"area", values: Map k->v,
   * color, name}; refs: horizontal reference lines {value, color, label}.
   */
  function drawChart(el, { lo = 0, hi, fmt, layers, refs = [], keys = [], tip }) {
    el.replaceChildren();
    // on a phone the chart is drawn 340 units wide, so its ticks stay readable at 1:1
    const box0 = window.innerWidth < 600 ? "0 0 340 240" : "0 0 600 230";
    if (el.getAttribute("viewBox") !== box0) el.setAttribute("viewBox", box0);
    const box = el.viewBox.baseVal;
    const W = box.width, H = box.height, L = 46, R = 8, T = 24, B = 22;
    const [from, to] = state.window || [0, 23];
    const n = to - from + 1;
    const slot = (W - L - R) / n;
    const x = (k) => L + (k - from + 0.5) * slot;
    const values = layers.flatMap((l) => Array.from(l.values.values())).filter((v) => v !== null && v !== undefined);
    let top = Math.max(hi || 0, ...values, ...refs.map((r) => r.value));
    let bottom = Math.min(lo, ...values);
    if (top === bottom) top = bottom + 1;
    const step = niceStep(top - bottom, 4);
    top = Math.ceil(top / step) * step;
    bottom = Math.floor(bottom / step) * step;
    const y = (v) => T + ((top - v) / (top - bottom)) * (H - T - B);
    for (let v = bottom; v <= top + step / 2; v += step) {
      svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: v === 0 ? "axis" : "gridline" }, el);
      svg("text", { x: L - 6, y: y(v), class: "tick y" }, el, fmt(v));
    }
    const shown = state.view ? state.view.interval : null;
    if (shown !== null && shown >= from && shown <= to) {
      svg("rect", { x: L + (shown - from) * slot, y: T, width: slot, height: H - T - B, class: "shown" }, el);
    }
    const every = Math.max(1, Math.ceil((n * 44) / (W - L - R))); // a tick label every 44 units
    for (let k = from; k <= to; k++) {
      if ((k - from) % every) continue;
      svg("text", { x: x(k), y: H - 6, class: "tick x" }, el, intervalTime(k) || String(k));
    }
    const bars = layers.filter((l) => l.type === "bars");
    bars.forEach((layer, i) => {
      const bw = (slot * 0.72) / bars.length;
      for (const [k, v] of layer.values) {
        if (v === null || v === undefined || k < from || k > to) continue;
        const bx = x(k) - (slot * 0.72) / 2 + i * bw;
        const y0 = y(0), y1 = y(v);
        svg("rect", { x: bx.toFixed(1), y: Math.min(y0, y1).toFixed(1), width: Math.max(1, bw - 1).toFixed(1), height: Math.abs(y1 - y0).toFixed(1), rx: 1.5, fill: layer.color }, el);
      }
    });
    for (const layer of layers.filter((l) => l.type !== "bars")) {
      const pts = [];
      const segments = [];
      for (let k = from; k <= to; k++) {
        const v = layer.values.get(k);
        if (v === null || v === undefined) {
          if (pts.length) segments.push(pts.splice(0));
          continue;
        }
        pts.push([x(k), y(v)]);
      }
      if (pts.length) segments.push(pts);
      for (const seg of segments) {
        const d = seg.map((p, i) => `${i ? "L" : "M"}${p[0].toFixed(1)} ${p[1].toFixed(1)}`).join("");
        if (layer.type === "area" && seg.length > 1) {
          svg("path", { d: `${d}L${seg[seg.length - 1][0].toFixed(1)} ${y(0)}L${seg[0][0].toFixed(1)} ${y(0)}Z`, class: "area", fill: layer.color }, el);
        }
        svg("path", { d, class: "line", stroke: layer.color }, el);
        if (layer.dots || seg.length === 1) for (const p of seg) svg("circle", { cx: p[0], cy: p[1], r: 3, class: "dot", fill: layer.color }, el);
      }
    }
    for (const r of refs) {
      svg("line", { x1: L, x2: W - R, y1: y(r.value), y2: y(r.value), class: "ref", stroke: r.color }, el);
      svg("text", { x: W - R - 2, y: y(r.value) - 3, class: "ref-label", fill: r.color, "text-anchor": "end" }, el, r.label);
    }
    let kx = L;
    for (const key of keys) {
      svg("rect", { x: kx, y: 3, width: 10, height: 10, rx: 2, fill: key.color }, el);
      const t = svg("text", { x: kx + 14, y: 8.5, class: "key" }, el, key.label);
      kx += 26 + key.label.length * 6;
      void t;
    }
    if (!values.length) {
      svg("text", { x: (L + W - R) / 2, y: (T + H - B) / 2, class: "empty-note" }, el, "no settled interval in this window yet");
    }
    for (let k = from; k <= to; k++) {
      const text = tip ? tip(k) : null;
      if (!text) continue;
      const r = svg("rect", { x: L + (k - from) * slot, y: T, width: slot, height: H - T - B, class: "hover" }, el);
      svg("title", {}, r, text);
    }
  }

  function renderCharts() {
    const s = state.summary;
    const series = s ? s.series : [];
    const by = new Map(series.map((row) => [row.interval, row]));
    const m = (f) => new Map(series.map((row) => [row.interval, f(row)]));
    const [from, to] = state.window || [0, 23];
    setText($("#charts-range"), `intervals ${from}–${to}${charter() && charter().interval_ms < 60000 ? " (each stands for an hour of the kit's day)" : ""}`);
    const tipOf = (k, f) => (by.has(k) ? `interval ${intervalName(k)}\n${f(by.get(k))}` : null);

    drawChart($("#chart-energy"), {
      fmt: (v) => (v >= 1000 ? `${v / 1000}k` : String(v)),
      layers: [
        { type: "area", values: m((r) => r.generation_wh), color: COLORS.generation },
        { type: "line", values: m((r) => r.demand_wh), color: COLORS.demand },
      ],
      keys: [{ label: "generation", color: COLORS.generation }, { label: "demand", color: COLORS.demand }],
      tip: (k) => tipOf(k, (r) => `generation ${fmtWh(r.generation_wh)}\ndemand ${fmtWh(r.demand_wh)}`),
    });

    const capacity = Object.fromEntries(state.agents.map((a) => [a.id, a.capacity_wh]));
    const batteries = Array.from(new Set(series.flatMap((r) => Object.keys(r.soc_wh || {})))).sort((a, b) => labelOf(a).localeCompare(labelOf(b)));
    drawChart($("#chart-soc"), {
      hi: 100,
      fmt: (v) => `${v}%`,
      layers: batteries.map((b, i) => ({
        type: "line",
        color: COLORS.batteries[i % COLORS.batteries.length],
        values: m((r) => (r.soc_wh && b in r.soc_wh && capacity[b] ? (100 * r.soc_wh[b]) / capacity[b] : null)),
      })),
      keys: batteries.map((b, i) => ({ label: labelOf(b), color: COLORS.batteries[i % COLORS.batteries.length] })),
      tip: (k) => tipOf(k, (r) => Object.entries(r.soc_wh || {}).map(([b, wh]) => `${labelOf(b)}: ${fmtWh(wh)}`).join("\n")),
    });

    const rules = state.community && state.community.grids[viewGrid()] ? state.community.grids[viewGrid()].rules : null;
    const refs = rules
      ? [
          { value: rules.retail / 1000, color: COLORS.retail, label: "retail" },
          { value: rules.community_price / 1000, color: COLORS.community, label: "community" },
          { value: rules.feed_in / 1000, color: COLORS.feedIn, label: "feed-in" },
        ]
      : [];
    drawChart($("#chart-price"), {
      fmt: (v) => String(v),
      layers: [{ type: "line", dots: true, values: m((r) => (r.avg_price === null ? null : r.avg_price / 1000)), color: COLORS.price }],
      refs,
      keys: [{ label: "average trade price", color: COLORS.price }],
      tip: (k) => tipOf(k, (r) => `average price ${fmtPrice(r.avg_price)}\n${r.confirmed} confirmed, ${r.disputed} disputed, ${r.pending} pending`),
    });

    drawChart($("#chart-grid"), {
      fmt: (v) => (Math.abs(v) >= 1000 ? `${v / 1000}k` : String(v)),
      layers: [
        { type: "bars", values: m((r) => r.grid_import_wh), color: COLORS.import },
        { type: "bars", values: m((r) => -r.grid_export_wh), color: COLORS.export },
      ],
      keys: [{ label: "import", color: COLORS.import }, { label: "export", color: COLORS.export }],
      tip: (k) => tipOf(k, (r) => `import ${fmtWh(r.grid_import_wh)}\nexport ${fmtWh(r.grid_export_wh)}`),
    });
  }

  // -- rendering: bills ------------------------------------------------------------------------

  const ROLE_ORDER = { consumer: 0, storage: 1, generator: 2 };

  function renderBills() {
    const tbody = $("#bills tbody");
    const k = state.summary ? state.summary.kpis : null;
    const bills = k ? k.bills : {};
    const saved = k && k.savings ? k.savings.per_agent || {} : {};
    const roles = Object.fromEntries(state.agents.map((a) => [a.id, a.role]));
    const ids = Object.keys(bills).sort((a, b) => (ROLE_ORDER[roles[a]] ?? 9) - (ROLE_ORDER[roles[b]] ?? 9) || labelOf(a).localeCompare(labelOf(b)));
    const rows = ids.map((id) => {
      const b = bills[id];
      const name = labelOf(id);
      const net = b.net;
      const netCell = html("td", { class: `num ${net > 0 ? "pays" : net < 0 ? "earns" : ""}`, "data-label": "net", title: net > 0 ? "pays" : net < 0 ? "earns" : "" }, fmtMoney(net));
      return html(
        "tr",
        { "data-bill": name, "data-agent": id },
        html("td", { class: "c-name" }, html("i", { class: `role-dot ${roles[id] || ""}`, title: roles[id] || "" }), " ", html("span", { class: "agent-name", title: id }, name)),
        html("td", { class: "num", "data-label": "bought" }, fmtWh(b.bought_wh)),
        html("td", { class: "num", "data-label": "sold" }, fmtWh(b.sold_wh)),
        html("td", { class: "num", "data-label": "spent" }, fmtMoney(b.spent)),
        html("td", { class: "num", "data-label": "earned" }, fmtMoney(b.earned)),
        html("td", { class: "num", "data-label": "utility", title: `from the utility grid ${fmtWh(b.imbalance_import_wh)} for ${fmtMoney(b.imbalance_spent)}; to it ${fmtWh(b.imbalance_export_wh)} for ${fmtMoney(b.imbalance_earned)}` }, fmtMoney(b.imbalance_spent - b.imbalance_earned)),
        netCell,
        html("td", { class: `num ${saved[id] > 0 ? "earns" : saved[id] < 0 ? "pays" : ""}`, "data-label": "saved" }, id in saved ? fmtMoney(saved[id]) : "–"),
      );
    });
    if (!rows.length) rows.push(html("tr", { class: "empty-row" }, html("td", { colspan: 8 }, "bills appear once an interval is metered")));
    tbody.replaceChildren(...rows);
  }

  // -- rendering: agents, sync and audit ---------------------------------------------------------

  function syncOf(agent) {
    const info = state.info;
    if (agent.forked) return ["bad", "forked", "this agent signed two different actions at one height"];
    if (!info) return ["plain", "?", ""];
    if (agent.id === info.agent) return ["info", "this node", "the node serving this page"];
    const peer = (info.peers || []).find((p) => p.agent === agent.id);
    if (!peer) return ["plain", "via gossip", "no direct link: its chain reaches us through other peers"];
    if (!peer.reachable) return ["plain", "pushes to us", "behind a router: it connects to us"];
    if (peer.failures > 0) return ["bad", "unreachable", peer.last_error || `${peer.failures} failed attempts`];
    if (peer.seconds_since_ok === null || peer.seconds_since_ok === undefined) return ["plain", "connecting", "it has not answered yet"];
    const when = `last exchange ${peer.seconds_since_ok} s ago`;
    if (peer.lag === null || peer.lag === undefined) return ["info", "linked", `it answers; chains not compared yet; ${when}`];
    const stale = peer.seconds_since_ok > 30;
    if (!peer.lag && !peer.behind) return [stale ? "warn" : "ok", "in sync", when];
    // new actions are signed every interval: a few in flight is normal, many or old is not
    const busy = stale || peer.lag > 20 || peer.behind > 20;
    const arrows = `${peer.lag ? `↓${peer.lag}` : ""}${peer.lag && peer.behind ? " " : ""}${peer.behind ? `↑${peer.behind}` : ""}`;
    const tip = `it holds ${peer.lag || 0} action(s) we lack and lacked ${peer.behind || 0} we hold at the last comparison; ${when}`;
    return [busy ? "warn" : "info", `syncing ${arrows}`, tip];
  }

  function auditView(id) {
    const a = state.audits[id];
    if (!a) return null;
    if (a.running) return html("span", { class: "badge plain", "data-audit": "running" }, "auditing…");
    if (a.error) return html("span", { class: "badge bad", "data-audit": "error", title: a.error }, "audit failed");
    const cls = a.status === "valid" ? "ok" : a.status === "forked" ? "warn" : "bad";
    const mark = a.status === "valid" ? "✓" : "✗";
    const wrap = html(
      "span",
      {},
      html("span", { class: `badge ${cls}`, "data-audit": a.status }, `${mark} ${a.status}`),
      html("span", { class: "sub", title: `re-verified at ${a.at}` }, ` ${nf.format(a.length)} actions`),
    );
    if (a.problems && a.problems.length) {
      const list = html("ul", { class: "audit-problems" });
      for (const p of a.problems.slice(0, 6)) list.append(html("li", {}, typeof p === "string" ? p : JSON.stringify(p)));
      if (a.problems.length > 6) list.append(html("li", {}, `… and ${a.problems.length - 6} more`));
      wrap.append(list);
    }
    return wrap;
  }

  async function runAudit(agent) {
    state.audits[agent.id] = { running: true };
    renderAgents();
    try {
      const r = await api(`/v1/agents/${agent.id}/audit`);
      state.audits[agent.id] = { ...r, at: new Date().toLocaleTimeString([], { hour12: false }) };
    } catch (err) {
      state.audits[agent.id] = { error: String(err.message || err) };
    }
    renderAgents();
  }

  function renderAgents() {
    const tbody = $("#agents tbody");
    const grid = viewGrid();
    const agents = state.agents
      .slice()
      .sort((a, b) => (a.grid === grid ? 0 : 1) - (b.grid === grid ? 0 : 1) || a.grid.localeCompare(b.grid) || (ROLE_ORDER[a.role] ?? 9) - (ROLE_ORDER[b.role] ?? 9) || labelOf(a.id, a.name).localeCompare(labelOf(b.id, b.name)));
    const keep = new Set(agents.map((a) => a.id));
    for (const tr of $$("tr[data-agent]", tbody)) if (!keep.has(tr.getAttribute("data-agent"))) tr.remove();
    $$(".empty-row", tbody).forEach((r) => r.remove());
    agents.forEach((agent, i) => {
      let tr = byAttr("data-agent", agent.id, tbody);
      if (!tr) {
        tr = html(
          "tr",
          { "data-agent": agent.id, "data-agent-name": agent.name },
          html("td", { class: "c-name" }),
          html("td", { class: "num c-height", "data-label": "chain height" }),
          html("td", { class: "c-sync", "data-label": "sync" }),
          html("td", { class: "c-audit", "data-label": "audit" }),
        );
        const button = html("button", { type: "button", class: "audit-button", "data-audit-agent": agent.id, title: "re-verify this agent's whole chain now" }, "Audit");
        button.addEventListener("click", () => {
          const current = state.agents.find((a) => a.id === agent.id) || agent;
          runAudit(current);
        });
        $(".c-audit", tr).append(html("div", { class: "audit-cell" }, button, html("span", { class: "audit-result" })));
      }
      const before = tbody.children[i];
      if (before !== tr) tbody.insertBefore(tr, before || null);
      const name = $(".c-name", tr);
      const you = state.info && agent.id === state.info.agent;
      const label = labelOf(agent.id, agent.name);
      const nameKey = `${label}|${agent.role}|${agent.household}|${agent.grid}|${you}`;
      if (name.dataset.key !== nameKey) {
        name.dataset.key = nameKey;
        name.replaceChildren(
          html("i", { class: `role-dot ${agent.role}` }),
          " ",
          html("span", { class: "agent-name", title: agent.id }, label),
          html("div", { class: "sub" }, `${agent.role} · ${agent.household} · grid ${agent.grid}`),
        );
      }
      const height = $(".c-height", tr);
      const heightKey = `${agent.length}|${ago(agent.last_seen_us)}`;
      if (height.dataset.key !== heightKey) {
        height.dataset.key = heightKey;
        height.replaceChildren(html("b", {}, nf.format(agent.length)), html("div", { class: "sub" }, `last action ${ago(agent.last_seen_us)}`));
      }
      const [cls, text, tip] = syncOf(agent);
      const sync = $(".c-sync", tr);
      const syncKey = `${cls}|${text}|${tip}`;
      if (sync.dataset.key !== syncKey) {
        sync.dataset.key = syncKey;
        sync.replaceChildren(html("span", { class: `badge ${cls}`, title: tip, "data-sync": text }, text));
      }
      const a = state.audits[agent.id];
      const auditKey = JSON.stringify(a || null);
      const result = $(".audit-result", tr);
      if (result.dataset.key !== auditKey) {
        result.dataset.key = auditKey;
        const v = auditView(agent.id);
        result.replaceChildren(...(v ? [v] : []));
        $(".audit-button", tr).disabled = !!(a && a.running);
      }
    });
    if (!agents.length) tbody.replaceChildren(html("tr", { class: "empty-row" }, html("td", { colspan: 4 }, "no agents known yet")));
  }

  // -- rendering: trades -------------------------------------------------------------------------

  const STATUS_CLASS = { confirmed: "ok", disputed: "bad", pending: "warn", failed: "bad", superseded: "plain" };
  // what each status means and what happens next (the page's #status-help says it at length)
  const STATUS_NOTE = {
    confirmed: "both sides signed it: final, billed",
    pending: "a settlement is still to come; it usually heals before the final deadline",
    disputed: "the two settlements disagree: not billed, settled with the utility grid",
    failed: "one side never settled (a defaulter): not billed, settled with the utility grid",
    superseded: "replaced by a revision: not billed",
  };

  function actionLink(hash, side) {
    return html("a", { class: "hash-link", href: `/v1/actions/${hash}`, "data-action": hash, "data-side": side, target: "_blank", rel: "noopener", title: `the signed ${side}: ${hash}` }, `${side} ${shortHash(hash, 6)}`);
  }

  function renderTrades() {
    const tbody = $("#trades tbody");
    // newest first, but a disputed or failed trade heads the list: it needs a look
    const attention = (t) => (t.status === "disputed" || t.status === "failed" ? 0 : 1);
    const trades = state.trades.slice().reverse().sort((a, b) => attention(a) - attention(b)).slice(0, TRADE_ROWS);
    const counts = { confirmed: 0, pending: 0, disputed: 0, failed: 0 };
    for (const t of state.trades) counts[t.status] = (counts[t.status] || 0) + 1;
    for (const el of $$("[data-status-help]")) el.classList.toggle("seen", !!counts[el.getAttribute("data-status-help")]);
    $("#trade-counts").replaceChildren(
      ...Object.entries(counts).map(([s, n]) => html("span", { class: `badge ${n ? STATUS_CLASS[s] : "plain"}`, "data-count": s }, `${n} ${s}`)),
    );
    // rows are kept and updated in place (a link being clicked never vanishes under the pointer)
    const existing = new Map($$("tr[data-trade]", tbody).map((tr) => [tr.getAttribute("data-trade"), tr]));
    $$(".empty-row", tbody).forEach((r) => r.remove());
    const keep = new Set();
    trades.forEach((t, i) => {
      const id = `${t.interval}:${t.offer}:${t.bid}`;
      keep.add(id);
      let tr = existing.get(id);
      if (!tr) {
        tr = html(
          "tr",
          { "data-trade": id, class: state.seenTrades.size && !state.seenTrades.has(id) ? "fresh" : null },
          html("td", { class: "c-interval", "data-label": "interval" }, html("b", {}, String(t.interval)), html("span", { class: "sub" }, ` ${intervalTime(t.interval)}`)),
          html("td", { class: "c-seller", "data-label": "seller" }, t.seller_name || labelOf(t.seller)),
          html("td", { class: "arrow-cell" }, "→"),
          html("td", { class: "c-buyer", "data-label": "buyer" }, t.buyer_name || labelOf(t.buyer)),
          html("td", { class: "num", "data-label": "energy" }, fmtWh(t.energy_wh)),
          html("td", { class: "num", "data-label": "price" }, fmtPrice(t.price)),
          html("td", { class: "c-status", "data-label": "status" }, html("span", { class: "badge status" }), html("div", { class: "sub why" })),
          html("td", { class: "c-links", "data-label": "signed" }, actionLink(t.offer, "offer"), " ", actionLink(t.bid, "bid")),
        );
      }
      const badge = $(".status", tr);
      const why = [missingText(t), t.status === "confirmed" ? "" : STATUS_NOTE[t.status] || ""].filter(Boolean).join("; ");
      if (tr.getAttribute("data-status") !== t.status || badge.title !== why) {
        tr.setAttribute("data-status", t.status);
        badge.className = `badge status ${STATUS_CLASS[t.status] || "plain"}`;
        badge.textContent = t.status;
        badge.title = why || STATUS_NOTE.confirmed;
        setText($(".why", tr), why);
      }
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    for (const [id, tr] of existing) if (!keep.has(id)) tr.remove();
    for (const t of state.trades) state.seenTrades.add(`${t.interval}:${t.offer}:${t.bid}`);
    if (!trades.length) tbody.replaceChildren(html("tr", { class: "empty-row" }, html("td", { colspan: 8 }, "no trades in this window yet")));
    const [from, to] = state.window || [0, 23];
    $("#trades-csv").setAttribute("href", `/v1/trades?format=csv&grid=${encodeURIComponent(viewGrid())}&from=${from}&to=${to}`);
  }

  function missingText(t) {
    const parts = Object.entries(t.missing || {}).map(([a, hashes]) => `${labelOf(a)} lacked ${hashes.length} order${hashes.length === 1 ? "" : "s"}`);
    return parts.join("; ");
  }

  // -- the signed action dialog ------------------------------------------------------------------

  function hexBytes(hex) {
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  /** Check the Ed25519 signature in this browser when it can (WebCrypto, secure context). */
  async function verifyHere(action) {
    try {
      if (!window.crypto || !crypto.subtle) return null;
      const key = await crypto.subtle.importKey("raw", hexBytes(action.author), { name: "Ed25519" }, false, ["verify"]);
      return await crypto.subtle.verify({ name: "Ed25519" }, key, hexBytes(action.signature), hexBytes(action.action_bytes));
    } catch (_) {
      return null;
    }
  }

  async function showAction(hash) {
    const dialog = $("#action-dialog");
    const body = $("#action-body");
    body.replaceChildren(html("p", { class: "muted" }, "loading…"));
    if (!dialog.open) dialog.showModal();
    let a;
    try {
      a = await api(`/v1/actions/${hash}`);
    } catch (err) {
      body.replaceChildren(html("p", {}, `This node does not hold that action (${err.message}).`));
      return;
    }
    const p = a.payload || {};
    const rows = [
      ["type", a.type],
      ["author", `${labelOf(a.author, "?")} · ${a.author}`],
      ["height", String(a.seq)],
      ["signed at", new Date(a.ts / 1000).toISOString()],
      ["interval", p.interval !== undefined ? intervalName(p.interval) : "–"],
      ["energy", p.energy_wh !== undefined ? fmtWh(p.energy_wh) : "–"],
      ["limit price", p.price !== undefined ? fmtPrice(p.price) : "–"],
      ["hash", a.hash],
      ["previous", a.prev || "–"],
      ["signature", a.signature],
    ];
    const dl = html("dl", {});
    for (const [k, v] of rows) dl.append(html("dt", {}, k), html("dd", {}, v));
    const check = html("p", { class: "muted" }, "checking the signature in this browser…");
    body.replaceChildren(
      dl,
      check,
      html("p", {}, html("a", { href: `/v1/actions/${a.hash}`, target: "_blank", rel: "noopener" }, "the action as JSON"), " · ", html("a", { href: `/v1/agents/${a.author}/chain?from=${a.seq}&limit=1`, target: "_blank", rel: "noopener" }, "its place in the author's chain")),
    );
    const ok = await verifyHere(a);
    check.replaceChildren(
      ok === true
        ? html("span", { class: "badge ok" }, "✓ Ed25519 signature verified by this browser")
        : ok === false
          ? html("span", { class: "badge bad" }, "✗ the signature does not verify")
          : html("span", { class: "sub" }, "this browser cannot check Ed25519 here; the node verified it on arrival"),
    );
  }

  // -- rendering: community ------------------------------------------------------------------------

  function renderCommunity() {
    const c = state.community;
    const box = $("#grids");
    if (!c) return;
    const ours = state.info ? state.info.grid : c.grid;
    const names = Object.keys(c.grids).sort((a, b) => (a === ours ? -1 : b === ours ? 1 : a.localeCompare(b)));
    const heights = Object.fromEntries(state.agents.map((a) => [a.id, a.length]));
    const key = JSON.stringify([names, c.grids, c.names, heights, c.charter && c.charter.version]);
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    const total = names.reduce((n, g) => n + c.grids[g].agents.length, 0);
    const ch = c.charter;
    const remote = names.length - (names.includes(ours) ? 1 : 0);
    setText(
      $("#community-caption"),
      `${c.community} · ${names.length} grid${names.length === 1 ? "" : "s"}${remote ? ` (${remote} joined)` : ""} · ${total} agents` +
        `${ch ? ` · charter v${ch.version}${ch.open ? ", open" : ", by invitation"}` : ""}`,
    );
    const cards = names.map((g) => {
      const grid = c.grids[g];
      const r = grid.rules;
      const rules = r
        ? `${r.mechanism} · retail ${fmtPrice(r.retail)} · feed-in ${fmtPrice(r.feed_in)} · community ${fmtPrice(r.community_price)}`
        : "not in the charter yet: the admin adds it with picogrid charter --grid";
      const chip = (a) =>
        html(
          "span",
          { class: "chip", "data-agent": a.id, title: `${a.role} · ${a.id}${a.url ? ` · ${a.url}` : ""} · chain height ${a.length}${a.forked ? " · FORKED" : ""}` },
          html("i", { class: `role-dot ${a.role}` }),
          labelOf(a.id, a.name),
          html("span", { class: "sub" }, ROLE_WORD[a.role] || a.role),
        );
      const rows = households(grid.agents).map(([h, members]) =>
        html("div", { class: "hh-row", "data-household": h }, html("span", { class: "hh-name" }, h === "community" ? "community" : h), html("div", { class: "chips" }, ...members.map(chip))),
      );
      const where = g === ours ? null : Array.from(new Set(grid.agents.map((a) => a.url).filter(Boolean)));
      const counts = ["consumer", "storage", "generator"].map((role) => [role, grid.agents.filter((a) => a.role === role).length]);
      return html(
        "div",
        { class: `grid-card${g === ours ? " ours" : ""}`, "data-grid": g },
        html(
          "h3",
          {},
          g,
          g === ours ? html("span", { class: "badge info" }, "this grid") : html("span", { class: "badge plain" }, "joined PicoGrid"),
          html("span", { class: "sub" }, counts.filter(([, n]) => n).map(([role, n]) => `${n} ${PLURAL[role][n === 1 ? 0 : 1]}`).join(" · ")),
        ),
        html("div", { class: "rules" }, rules),
        ...rows,
        where && where.length ? html("p", { class: "hint" }, `reached at ${where.slice(0, 2).join(", ")}${where.length > 2 ? ", …" : ""}`) : null,
      );
    });
    if (names.length < 2) {
      cards.push(html("p", { class: "hint" }, "No other PicoGrid has joined yet. Another one joins this community with ", html("code", {}, "picogrid init --join <this node's URL>"), "."));
    }
    box.replaceChildren(...cards);
  }

  // -- the polling loop ------------------------------------------------------------------------------

  function estimateCurrent() {
    const c = charter();
    if (!c) return 0;
    return Math.floor((Date.now() * 1000 - c.epoch_us) / (c.interval_ms * 1000));
  }

  function chartWindow(current) {
    const to = Math.max(23, current + 1);
    return [to - 23, to];
  }

  const isSettled = (v) => v && v.leds && Object.keys(v.leds).length > 0;

  async function latestSettledView(series, current) {
    const ks = series.map((r) => r.interval).sort((a, b) => b - a).slice(0, 3);
    for (const k of ks) {
      const v = await api(`/v1/intervals/${k}?grid=${encodeURIComponent(viewGrid())}`);
      const pending = v.trades.some((t) => t.status === "pending");
      if (isSettled(v) && (!pending || k < current)) return v;
    }
    return null;
  }

  async function refresh() {
    const [info, agents] = await Promise.all([api("/v1/info"), api("/v1/agents")]);
    state.info = info;
    state.agents = agents;
    if (!state.community || Date.now() - state.communityAt > 10000) {
      state.community = await api("/v1/community");
      state.communityAt = Date.now();
    }
    if (!charter()) {
      state.ok = true;
      return;
    }
    const current = state.summary ? state.summary.current : estimateCurrent();
    const [from, to] = chartWindow(current);
    const grid = encodeURIComponent(viewGrid());
    const summary = await api(`/v1/summary?grid=${grid}&from=${from}&to=${to}`);
    state.summary = summary;
    state.window = chartWindow(summary.current);
    if (state.pinned !== null) {
      state.view = await api(`/v1/intervals/${state.pinned}?grid=${grid}`);
    } else {
      state.view = (await latestSettledView(summary.series, summary.current)) || state.view;
    }
    const tradesKey = summary.series.map((r) => `${r.interval}:${r.confirmed}:${r.disputed}:${r.pending}`).join(",") + `|${state.window}`;
    if (tradesKey !== state.tradesKey) {
      const [wf, wt] = state.window;
      const t = await api(`/v1/trades?grid=${grid}&format=json&from=${wf}&to=${wt}`);
      state.trades = t.trades;
      state.tradesKey = tradesKey;
      renderTrades();
    }
    state.ok = true;
  }

  function renderAll() {
    renderHeader();
    renderBoard();
    renderKpis();
    renderCharts();
    renderBills();
    renderAgents();
    renderCommunity();
  }

  function pollDelay() {
    const c = charter();
    const half = c ? c.interval_ms / 2 : 2000;
    return Math.max(1000, Math.min(3000, half));
  }

  let timer = null;

  async function tick() {
    clearTimeout(timer);
    try {
      await refresh();
      state.error = null;
    } catch (err) {
      state.ok = false;
      state.error = err && err.status === 503 ? err.message : null;
    }
    try {
      renderAll();
    } finally {
      timer = setTimeout(tick, state.ok ? pollDelay() : 3000);
    }
  }

  function go(k) {
    const latest = state.summary && state.summary.series.length ? state.summary.series[state.summary.series.length - 1].interval : null;
    state.pinned = k === null || (latest !== null && k >= latest) ? null : Math.max(0, k);
    tick();
  }

  function init() {
    $("#prev-interval").addEventListener("click", () => {
      if (state.view) go(state.view.interval - 1);
    });
    $("#next-interval").addEventListener("click", () => {
      if (state.view) go(state.view.interval + 1);
    });
    $("#follow-live").addEventListener("click", () => go(null));
    $("#trades").addEventListener("click", (ev) => {
      const link = ev.target.closest("a[data-action]");
      if (!link || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
      ev.preventDefault();
      showAction(link.getAttribute("data-action"));
    });
    $("#action-close").addEventListener("click", () => $("#action-dialog").close());
    window.addEventListener("resize", () => renderCharts()); // a phone turned: redraw to fit
    // the countdowns tick every second between polls
    setInterval(() => {
      if (!charter()) return;
      renderCountdown();
      renderFirstInterval();
    }, 1000);
    $("#action-dialog").addEventListener("click", (ev) => {
      if (ev.target === ev.currentTarget) ev.currentTarget.close();
    });
    tick();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
