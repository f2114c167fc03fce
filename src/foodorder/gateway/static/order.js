// An order's page: its timeline, ETA and driver, pushed by the server over Server-Sent Events.
"use strict";

const ORDER = JSON.parse(document.getElementById("order").textContent);
const RESTAURANT = JSON.parse(document.getElementById("restaurant").textContent);
const REGION = JSON.parse(document.getElementById("region").textContent);
const LABELS = {
  NEW: "Received",
  CREATED: "Order placed",
  SCHEDULED: "Scheduled",
  IN_PREPARATION: "Being prepared",
  SCHEDULING_DELIVERY: "Looking for a driver",
  WAITING_FOR_DRIVER: "Driver on the way to the restaurant",
  IN_DELIVERY: "On its way to you",
  DELIVERED: "Delivered",
  REJECTED: "Rejected",
  CANCELLED: "Cancelled",
};
const CANCELLABLE = new Set(["NEW", "CREATED", "SCHEDULED", "IN_PREPARATION", "SCHEDULING_DELIVERY", "WAITING_FOR_DRIVER"]);
const TERMINAL = new Set(["DELIVERED", "REJECTED", "CANCELLED"]);

const map = new FoodMap(document.getElementById("map"), REGION);
// The last status and the last tracking update (ETA, driver) shown: each kind is numbered apart.
const state = { status: ORDER.status, arrival: null, driver: null, seen: { status: 0, tracking: 0 } };

if (RESTAURANT) map.mark("restaurant", "restaurant", RESTAURANT.location, RESTAURANT.name);
if (ORDER.deliveryLocation) map.mark("customer", "customer", ORDER.deliveryLocation, "you");

function drawRoute() {
  const stops = [];
  if (state.driver) stops.push(state.driver);
  if (RESTAURANT && state.status !== "IN_DELIVERY") stops.push(RESTAURANT.location);
  if (ORDER.deliveryLocation) stops.push(ORDER.deliveryLocation);
  map.route(TERMINAL.has(state.status) ? [] : stops);
}

function showStatus(event) {
  state.status = event.status;
  const status = document.getElementById("status");
  status.textContent = LABELS[event.status] || event.status;
  status.dataset.status = event.status;
  const reason = document.getElementById("reason");
  const explained = ["REJECTED", "CANCELLED"].includes(event.status) && event.reason;
  reason.textContent = explained ? `Reason: ${event.reason}` : "";
  reason.hidden = !explained;
  const entry = document.createElement("li");
  entry.dataset.status = event.status;
  const time = document.createElement("time");
  time.textContent = clock(event.at);
  entry.append(time, ` ${LABELS[event.status] || event.status}`);
  if (event.reason) entry.append(` (${event.reason})`);
  document.getElementById("timeline").appendChild(entry);
  document.getElementById("cancel").hidden = !CANCELLABLE.has(event.status);
  if (TERMINAL.has(event.status)) {
    state.arrival = null;
    if (event.status !== "DELIVERED") map.unmark("driver");
  }
  showEta();
  drawRoute();
}

function showEta() {
  const box = document.getElementById("eta");
  box.hidden = state.arrival === null;
  if (state.arrival === null) return;
  document.getElementById("eta-time").textContent = clock(state.arrival);
  document.getElementById("eta-countdown").textContent = `(in ${duration(state.arrival - Date.now())})`;
}

// Each event once, in order, even when a reopened stream replays from the start.
function fresh(message) {
  const event = JSON.parse(message.data);
  const kind = event.type === "status" ? "status" : "tracking";
  if (event.seq <= state.seen[kind]) return null;
  state.seen[kind] = event.seq;
  return event;
}

function follow() {
  const source = new EventSource(`/store/orders/${encodeURIComponent(ORDER.id)}/events`);
  const connection = document.getElementById("connection");
  source.onopen = () => (connection.hidden = true);
  source.onerror = () => {
    if (TERMINAL.has(state.status)) return source.close();
    connection.textContent = "Connection lost: reconnecting…";
    connection.hidden = false;
    // The browser retries by itself after a network error, but gives up after an error answer.
    if (source.readyState === EventSource.CLOSED) setTimeout(follow, 2000);
  };
  source.addEventListener("status", (message) => {
    const event = fresh(message);
    if (!event) return;
    if (event.arrival) state.arrival = event.arrival; // the first estimate comes with IN_PREPARATION
    showStatus(event);
    if (TERMINAL.has(event.status)) source.close();
  });
  source.addEventListener("eta", (message) => {
    const event = fresh(message);
    if (!event) return;
    state.arrival = event.arrival;
    showEta();
  });
  source.addEventListener("driver", (message) => {
    const event = fresh(message);
    if (!event) return;
    state.arrival = event.arrival;
    state.driver = event.driver.location;
    map.mark("driver", "driver", event.driver.location, `driver ${event.driver.driverId}`);
    showEta();
    drawRoute();
  });
}

async function cancel() {
  const button = document.getElementById("cancel");
  button.disabled = true;
  button.textContent = "Cancelling…";
  const response = await fetch(`/store/orders/${encodeURIComponent(ORDER.id)}/cancel`, { method: "POST" });
  const data = await response.json().catch(() => ({}));
  button.disabled = false;
  button.textContent = "Cancel order";
  const error = document.getElementById("cancel-error");
  error.textContent = response.ok ? "" : problem(data);
  error.hidden = response.ok;
}

document.getElementById("cancel").addEventListener("click", cancel);
setInterval(showEta, 1000);
follow();
