// The operations dashboard: a snapshot of drivers and orders (of every region, or one) pushed every
// second over SSE. The map shows the chosen region (the first one when every region is shown).
"use strict";

const REGIONS = JSON.parse(document.getElementById("regions").textContent);
const REGION = JSON.parse(document.getElementById("region").textContent);
const REGION_NAMES = new Map(REGIONS.map((r) => [r.id, r.name]));
const map = new FoodMap(document.getElementById("map"), REGIONS.find((r) => r.id === REGION) || REGIONS[0]);

function cells(row, values) {
  row.replaceChildren(...values.map((value) => Object.assign(document.createElement("td"), { textContent: value })));
  return row;
}

function where(location) {
  return location ? `${location.lat.toFixed(4)}, ${location.long.toFixed(4)}` : "unknown";
}

document.querySelector("select[name=region]").addEventListener("change", (event) => event.target.form.submit());

function regionName(id) {
  return id ? REGION_NAMES.get(id) || id : "";
}

function show(snapshot) {
  const counts = document.getElementById("counts");
  counts.replaceChildren(
    ...Object.entries(snapshot.counts).map(([status, n]) =>
      Object.assign(document.createElement("span"), { textContent: `${status} ${n}`, className: "count" }),
    ),
  );
  document.getElementById("stale-after").textContent = duration(snapshot.staleAfterS * 1000);

  const shown = new Set();
  const drivers = document.getElementById("drivers");
  drivers.replaceChildren(
    ...snapshot.drivers.map((d) => {
      if (d.location) shown.add(map.mark(`driver:${d.id}`, "driver", d.location, `${d.id} (${d.status})`).dataset.marker);
      const row = cells(document.createElement("tr"), [d.id, regionName(d.region), d.status, where(d.location)]);
      row.dataset.driver = d.id;
      return row;
    }),
  );
  const orders = document.getElementById("orders");
  orders.replaceChildren(
    ...snapshot.activeOrders.map((o) => {
      if (o.restaurantLocation) shown.add(map.mark(`shop:${o.id}`, "restaurant", o.restaurantLocation, o.id).dataset.marker);
      if (o.deliveryLocation) shown.add(map.mark(`to:${o.id}`, "customer", o.deliveryLocation, o.id).dataset.marker);
      const row = cells(document.createElement("tr"), [o.id, regionName(o.region), o.status, duration(snapshot.at - o.since), o.retrying || ""]);
      row.classList.toggle("stale", o.stale);
      return row;
    }),
  );
  document.getElementById("problems").replaceChildren(
    ...snapshot.recentProblems.map((o) => cells(document.createElement("tr"), [o.orderId, o.status, o.reason || ""])),
  );
  document.getElementById("active").textContent = snapshot.active;
  document.getElementById("stale").textContent = snapshot.stale;
  page = snapshot.page;
  document.getElementById("page").textContent = `page ${snapshot.page} of ${snapshot.pages}`;
  document.getElementById("previous").disabled = snapshot.page <= 1;
  document.getElementById("next").disabled = snapshot.page >= snapshot.pages;
  map.keepOnly(shown);
}

const connection = document.getElementById("connection");
let page = 1;
let source = null;
function follow() {
  if (source) source.close();
  const region = REGION ? `&region=${encodeURIComponent(REGION)}` : "";
  source = new EventSource(`/ops/events?page=${page}${region}`);
  source.addEventListener("snapshot", (message) => {
    connection.hidden = true;
    show(JSON.parse(message.data));
  });
  source.addEventListener("unavailable", (message) => {
    connection.textContent = `Restate is unreachable: ${JSON.parse(message.data).detail}`;
    connection.hidden = false;
  });
  source.onerror = () => {
    connection.textContent = "Connection lost: reconnecting…";
    connection.hidden = false;
    // The browser retries by itself after a network error, but gives up after an error answer.
    if (source.readyState === EventSource.CLOSED) setTimeout(follow, 2000);
  };
}
for (const [id, step] of [["previous", -1], ["next", 1]]) {
  document.getElementById(id).addEventListener("click", () => {
    page = Math.max(1, page + step);
    follow();
  });
}

// The providers' status webhooks: deliveries per provider and state, and the latest that failed.
async function showWebhooks() {
  const answer = await fetch("/ops/webhooks");
  if (answer.ok) {
    const overview = await answer.json();
    document.getElementById("webhook-counts").replaceChildren(
      ...Object.entries(overview.counts).map(([provider, states]) =>
        Object.assign(document.createElement("span"), {
          className: "count",
          textContent: `${provider}: ${Object.entries(states).map(([state, n]) => `${state} ${n}`).join(", ")}`,
        }),
      ),
    );
    document.getElementById("webhook-failures").replaceChildren(
      ...overview.failed.map((d) =>
        cells(document.createElement("tr"), [
          d.provider,
          `${d.event.type} ${d.event.orderId || d.event.restaurantId} ${d.event.status}`,
          d.lastError || "",
        ]),
      ),
    );
  }
  setTimeout(showWebhooks, 5000);
}

follow();
showWebhooks();
