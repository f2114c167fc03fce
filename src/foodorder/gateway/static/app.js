// Shared by every page: the map and small formatting helpers.
//
// The map of one region is drawn as SVG: no tiles, no network. Markers are placed by latitude and
// longitude with an equirectangular projection around the region's center (fine at city scale).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const SAN_JOSE = { name: "San Jose", center: { lat: 37.3362, long: -121.8906 } };
const HALF_SPAN_M = 3500; // the map shows 7 km by 7 km
const M_PER_DEG_LAT = 110540;
const ICONS = { restaurant: "🍴", customer: "🏠", driver: "🚗" };

class FoodMap {
  // `region`: {name, center} of the catalog (San Jose when not given).
  constructor(container, region) {
    this.region = region || SAN_JOSE;
    this.mPerDegLong = 111320 * Math.cos((this.region.center.lat * Math.PI) / 180);
    this.svg = document.createElementNS(SVG_NS, "svg");
    this.svg.setAttribute("viewBox", `${-HALF_SPAN_M} ${-HALF_SPAN_M} ${2 * HALF_SPAN_M} ${2 * HALF_SPAN_M}`);
    this.svg.setAttribute("role", "img");
    this.svg.setAttribute("aria-label", "map of the delivery area");
    container.appendChild(this.svg);
    this.markers = new Map();
    this.drawGround();
  }

  project(location) {
    return {
      x: (location.long - this.region.center.long) * this.mPerDegLong,
      y: (this.region.center.lat - location.lat) * M_PER_DEG_LAT,
    };
  }

  add(parent, tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    parent.appendChild(node);
    return node;
  }

  drawGround() {
    const ground = this.add(this.svg, "g", { class: "ground" });
    this.add(ground, "rect", { x: -HALF_SPAN_M, y: -HALF_SPAN_M, width: 2 * HALF_SPAN_M, height: 2 * HALF_SPAN_M });
    for (let d = -3000; d <= 3000; d += 500) {
      const major = d % 1000 === 0 ? " major" : "";
      this.add(ground, "line", { x1: d, y1: -HALF_SPAN_M, x2: d, y2: HALF_SPAN_M, class: "street" + major });
      this.add(ground, "line", { x1: -HALF_SPAN_M, y1: d, x2: HALF_SPAN_M, y2: d, class: "street" + major });
    }
    this.add(ground, "circle", { cx: 0, cy: 0, r: 2500, class: "region" });
    const label = this.add(ground, "text", { x: -HALF_SPAN_M + 120, y: HALF_SPAN_M - 140, class: "scale" });
    label.textContent = `grid: 500 m · ${this.region.name}`;
    this.routes = this.add(this.svg, "g", { class: "routes" });
    this.layer = this.add(this.svg, "g", { class: "markers" });
  }

  // Place (or move) the marker `id` of `kind` at `location`, with a hover label.
  mark(id, kind, location, label) {
    let marker = this.markers.get(id);
    if (!marker) {
      marker = this.add(this.layer, "g", { class: `marker ${kind}`, "data-marker": id });
      this.add(marker, "circle", { r: 190 });
      const icon = this.add(marker, "text", { "text-anchor": "middle", "dominant-baseline": "central" });
      icon.textContent = ICONS[kind] || "•";
      this.add(marker, "title", {});
      this.markers.set(id, marker);
    }
    marker.querySelector("title").textContent = label || id;
    const { x, y } = this.project(location);
    marker.setAttribute("transform", `translate(${x.toFixed(1)} ${y.toFixed(1)})`);
    marker.setAttribute("data-lat", location.lat);
    marker.setAttribute("data-long", location.long);
    return marker;
  }

  unmark(id) {
    const marker = this.markers.get(id);
    if (marker) marker.remove();
    this.markers.delete(id);
  }

  keepOnly(ids) {
    for (const id of [...this.markers.keys()]) if (!ids.has(id)) this.unmark(id);
  }

  // A dashed line through `locations` (the way still to go).
  route(locations) {
    this.routes.replaceChildren();
    if (locations.length < 2) return;
    const points = locations.map((l) => this.project(l)).map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`);
    this.add(this.routes, "polyline", { points: points.join(" ") });
  }
}

function money(cents) {
  return `$${(cents / 100).toFixed(2)}`;
}

function clock(epochMs) {
  return new Date(epochMs).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// A problem answer of the API ({detail}) as one readable line.
function problem(data) {
  const detail = data && data.detail;
  if (Array.isArray(detail)) return detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ");
  return detail || "something went wrong: please try again";
}

function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}
