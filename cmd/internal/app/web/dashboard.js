// invroute's live dashboard: polls /v1/dashboard every second and draws
// it. Everything read from the topics is set as text, never as HTML.
"use strict";

(function () {
  const SVGNS = "http://www.w3.org/2000/svg";
  // Map frame: lon -11..27, lat 35..59, equirectangular with x scaled by
  // cos(47 deg) so that shapes look right in the middle of the frame.
  const LON0 = -11, LON1 = 27, LAT0 = 35, LAT1 = 59, K = 20, KX = Math.cos(47 * Math.PI / 180);
  const W = (LON1 - LON0) * KX * K, H = (LAT1 - LAT0) * K;
  const px = (lon) => (lon - LON0) * KX * K;
  const py = (lat) => (LAT1 - lat) * K;

  const $ = (id) => document.getElementById(id);
  const fmt = (n) => Math.round(n).toLocaleString("en-US");
  const fmt1 = (n) => (n >= 100 ? fmt(n) : n.toFixed(1));

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  function hhmmss(t) {
    const d = new Date(t);
    return isNaN(d) ? "" : d.toISOString().substring(11, 19);
  }

  // --- the map ---------------------------------------------------------
  const map = $("map");
  map.setAttribute("viewBox", "0 0 " + W.toFixed(1) + " " + H);
  const gLand = svg("g", {}), gGrid = svg("g", {}), gRoutes = svg("g", {}), gNodes = svg("g", {});
  map.append(gLand, gGrid, gRoutes, gNodes);
  for (const poly of window.EUROPE_OUTLINE || []) {
    const d = poly.map((p, i) => (i ? "L" : "M") + px(p[0]).toFixed(1) + " " + py(p[1]).toFixed(1)).join("") + "Z";
    gLand.append(svg("path", { d: d, class: "land" }));
  }
  for (let lon = -10; lon <= 25; lon += 5) {
    gGrid.append(svg("line", { x1: px(lon), y1: 0, x2: px(lon), y2: H, class: "grid" }));
    const t = svg("text", { x: px(lon) + 2, y: H - 3, class: "grid-label" });
    t.textContent = (lon < 0 ? -lon + "°W" : lon + "°E");
    gGrid.append(t);
  }
  for (let lat = 40; lat <= 55; lat += 5) {
    gGrid.append(svg("line", { x1: 0, y1: py(lat), x2: W, y2: py(lat), class: "grid" }));
    const t = svg("text", { x: 2, y: py(lat) - 2, class: "grid-label" });
    t.textContent = lat + "°N";
    gGrid.append(t);
  }

  function typeClass(t) {
    return t === "WAREHOUSE" ? "warehouse" : t === "THREE_PL" || t === "THREEPL" || t === "3PL" ? "threepl" : t === "STORE" ? "store" : "other";
  }

  function drawMap(d) {
    // Maps, not objects: ids come from the topics, and "constructor" or
    // "__proto__" is a valid node id.
    const nodes = new Map();
    for (const n of d.nodes) nodes.set(n.node_id, n);
    clear(gRoutes);
    const recent = new Map();
    let drawn = 0;
    d.decisions.forEach((dec, i) => {
      const fade = Math.max(0.15, 1 - i / d.decisions.length);
      for (const s of dec.shipments) {
        recent.set(s.node_id, (recent.get(s.node_id) || 0) + 1);
        const n = nodes.get(s.node_id);
        if (!n || !dec.ship_to || s.method !== "SHIP") continue;
        const x1 = px(n.lon), y1 = py(n.lat), x2 = px(dec.ship_to.lon), y2 = py(dec.ship_to.lat);
        const mx = (x1 + x2) / 2 - (y2 - y1) * 0.15, my = (y1 + y2) / 2 + (x2 - x1) * 0.15;
        gRoutes.append(svg("path", {
          d: "M" + x1.toFixed(1) + " " + y1.toFixed(1) + "Q" + mx.toFixed(1) + " " + my.toFixed(1) + " " + x2.toFixed(1) + " " + y2.toFixed(1),
          class: "route " + (dec.shipments.length > 1 ? "split" : "one"), opacity: fade.toFixed(2),
          "data-order": dec.order_id, "data-node": s.node_id,
        }));
        drawn++;
      }
      if (dec.ship_to) {
        gRoutes.append(svg("circle", { cx: px(dec.ship_to.lon), cy: py(dec.ship_to.lat), r: 2.2, class: "dest", opacity: fade.toFixed(2) }));
      }
    });
    clear(gNodes);
    for (const n of d.nodes) {
      const x = px(n.lon), y = py(n.lat);
      const c = svg("circle", {
        cx: x.toFixed(1), cy: y.toFixed(1), r: 7,
        class: "node-marker " + typeClass(n.type) + (n.active ? "" : " inactive"), "data-node": n.node_id,
      });
      const title = svg("title", {});
      title.textContent = n.node_id + " (" + n.type + ", " + n.country + (n.active ? "" : ", inactive") + ")";
      c.append(title);
      const label = svg("text", { x: (x + 9).toFixed(1), y: (y + 4).toFixed(1), class: "node-label" });
      label.textContent = n.node_id + (recent.has(n.node_id) ? " · " + recent.get(n.node_id) : "");
      gNodes.append(c, label);
    }
    $("map-note").textContent = drawn + " shipments of the last " + d.decisions.length + " decisions";
  }

  // --- tiles -----------------------------------------------------------
  function spark(id, values) {
    const e = $(id);
    clear(e);
    const v = values || [];
    if (v.length < 2) return;
    const top = Math.max(1, ...v);
    const pts = v.map((y, i) => (i * 120 / (v.length - 1)).toFixed(1) + "," + (27 - y / top * 25).toFixed(1)).join(" ");
    e.append(svg("polyline", { points: pts }));
  }

  function drawTiles(d) {
    const r = d.rates, c = d.counters || {};
    $("rate-movements").textContent = fmt1(r.movements_per_s);
    $("rate-orders").textContent = fmt1(r.orders_per_s);
    $("rate-decisions").textContent = fmt1(r.decisions_per_s);
    spark("spark-movements", d.series.movements);
    spark("spark-orders", d.series.orders);
    spark("spark-decisions", d.series.decisions);
    $("total-movements").textContent = fmt(c.invroute_inventory_movements_applied_total || 0) + " applied here";
    $("total-orders").textContent = fmt(c.invroute_router_orders_total || 0) + " placed here";
    $("total-decisions").textContent = fmt(d.routing.decisions) + " decisions";
    const rt = d.routing;
    $("split-rate").textContent = (rt.split_rate * 100).toFixed(1) + "%";
    $("split-sub").textContent = fmt(rt.split) + " of " + fmt(rt.with_shipments) + " orders split";
    $("saved").textContent = fmt(rt.shipments_saved);
    $("saved-sub").textContent = fmt(rt.lines) + " lines in " + fmt(rt.shipments) + " shipments";
    let lag = 0;
    const parts = [];
    for (const l of d.lag) {
      lag += l.records;
      parts.push(l.topology + " " + fmt(l.records));
    }
    $("lag").textContent = fmt(lag);
    $("lag-sub").textContent = parts.join(" · ");
    const dl = d.dead_letters;
    $("dead-total").textContent = fmt(dl.total);
    $("dead-sub").textContent = fmt1(r.dead_letters_per_s) + "/s · " + fmt(c.invroute_dead_letters_total || 0) + " written here";
  }

  // --- tables ----------------------------------------------------------
  function drawHot(d) {
    const nodes = d.nodes.map((n) => n.node_id);
    const thead = document.querySelector("#hot thead"), tbody = document.querySelector("#hot tbody");
    clear(thead);
    const hr = el("tr");
    hr.append(el("th", "", "SKU"), el("th", "num", "updates"), el("th", "num", "ATS"));
    for (const id of nodes) hr.append(el("th", "num", id));
    hr.append(el("th", "num", "version"));
    thead.append(hr);
    clear(tbody);
    for (const h of d.hot) {
      const tr = el("tr");
      tr.dataset.sku = h.sku;
      tr.append(el("td", "sku", h.sku), el("td", "num updates", fmt(h.updates)), el("td", "num ats" + (h.ats === 0 ? " zero" : ""), fmt(h.ats)));
      const byNode = new Map();
      for (const n of h.nodes) byNode.set(n.node_id, n);
      for (const id of nodes) {
        const n = byNode.get(id);
        const td = el("td", "num node" + (n && !n.active ? " inactive" : ""), n ? fmt(n.available) : "–");
        td.dataset.node = id;
        if (n) td.title = "on hand " + n.on_hand + ", reserved " + n.reserved + ", safety " + n.safety_stock;
        tr.append(td);
      }
      tr.append(el("td", "num version", h.version));
      tbody.append(tr);
    }
    $("hot-note").textContent = "Cells: available at the node (hover: on hand, reserved, safety stock). Updates counted over " +
      fmt(d.ats_updates) + " ATS updates read from the ats topic, " + d.hot_tracked + " SKUs tracked (Space-Saving top-k).";
  }

  function drawDecisions(d) {
    const tbody = document.querySelector("#decisions tbody");
    clear(tbody);
    for (const dec of d.decisions.slice(0, 10)) {
      const tr = el("tr", dec.split ? "split" : "");
      tr.dataset.order = dec.order_id;
      const ships = dec.shipments.map((s) => s.node_id + " (" + s.lines + ")").join(" + ") + (dec.more_shipments ? " + " + dec.more_shipments + " more" : "");
      const km = dec.shipments.reduce((a, s) => a + s.distance_km, 0);
      const what = el("td", "", ships || (dec.reason || ""));
      what.title = what.textContent;
      tr.append(el("td", "", hhmmss(dec.decided_at)), el("td", "order", dec.order_id), el("td", "status", dec.status + (dec.split ? " · split" : "")),
        what, el("td", "num", km ? fmt(km) : ""));
      tbody.append(tr);
    }
  }

  function drawDead(d) {
    const dl = d.dead_letters;
    const stages = $("dead-stages");
    clear(stages);
    for (const k of Object.keys(dl.by_stage).sort()) stages.append(el("span", "chip", (k || "?") + " " + fmt(dl.by_stage[k])));
    const tbody = document.querySelector("#dead tbody");
    clear(tbody);
    for (const x of dl.recent.slice(0, 8)) {
      const tr = el("tr");
      const error = el("td", "error", x.error), key = el("td", "key", x.key);
      error.title = x.error;
      key.title = x.key;
      tr.append(el("td", "", hhmmss(x.at)), el("td", "", x.source_topic + "[" + x.source_partition + "]@" + x.source_offset),
        el("td", "stage", x.stage), error, key);
      tbody.append(tr);
    }
  }

  // --- the loop --------------------------------------------------------
  let failures = 0;
  async function tick() {
    try {
      // A connection that hangs must not freeze the page on old figures
      // under a status that still reads "updated".
      const ctl = typeof AbortController === "function" ? new AbortController() : null;
      const timer = ctl ? setTimeout(() => ctl.abort(), 5000) : null;
      let res;
      try {
        res = await fetch("v1/dashboard", { cache: "no-store", signal: ctl ? ctl.signal : undefined });
      } finally {
        if (timer !== null) clearTimeout(timer);
      }
      if (!res.ok) throw new Error("HTTP " + res.status);
      const d = await res.json();
      drawTiles(d);
      drawMap(d);
      drawHot(d);
      drawDecisions(d);
      drawDead(d);
      failures = 0;
      const st = $("status");
      st.className = "status" + (d.tail_error ? " error" : "");
      st.textContent = "instance " + d.instance + " · updated " + hhmmss(d.at) + " UTC · " + fmt(d.tail_records) + " records read" +
        (d.tail_error ? " · " + d.tail_error : "");
      document.body.dataset.updated = d.at;
    } catch (err) {
      failures++;
      const st = $("status");
      st.className = "status error";
      st.textContent = "no data (" + err.message + "), retrying…";
    }
    setTimeout(tick, failures ? Math.min(10000, 1000 * failures) : 1000);
  }
  tick();
})();
