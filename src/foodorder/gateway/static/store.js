// The storefront: a restaurant's menu, a cart priced by the server, and checkout.
"use strict";

const CATALOG = JSON.parse(document.getElementById("catalog").textContent);
const CATEGORY_ICONS = { pizza: "🍕", sushi: "🍣", burgers: "🍔", sides: "🍟", drinks: "🥤", wraps: "🌯" };
const MAX_DELAY_MS = 7 * 24 * 3600 * 1000;
const cart = { restaurantId: null, quantities: new Map() };

function restaurant() {
  return CATALOG.restaurants.find((r) => r.id === cart.restaurantId);
}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

function showRestaurants() {
  const tabs = document.getElementById("restaurants");
  const regions = new Map(CATALOG.regions.map((r) => [r.id, r.name]));
  for (const shop of CATALOG.restaurants) {
    const label = `${shop.name} · ${regions.get(shop.region) || shop.region}`;
    const tab = element("button", { role: "tab", "data-restaurant": shop.id, "data-region": shop.region }, label);
    tab.addEventListener("click", () => choose(shop.id));
    tabs.appendChild(tab);
  }
}

function choose(restaurantId) {
  if (cart.restaurantId !== restaurantId) cart.quantities.clear();
  cart.restaurantId = restaurantId;
  for (const tab of document.querySelectorAll("#restaurants button")) {
    tab.setAttribute("aria-selected", tab.dataset.restaurant === restaurantId);
  }
  const menu = document.getElementById("menu");
  menu.replaceChildren();
  for (const item of restaurant().menu) {
    const card = element("div", { class: "item", "data-product": item.id });
    card.appendChild(element("span", { class: "icon", "aria-hidden": "true" }, CATEGORY_ICONS[item.category] || "🍴"));
    card.appendChild(element("span", { class: "name" }, item.name));
    card.appendChild(element("span", { class: "price" }, money(item.price)));
    const add = element("button", { "aria-label": `add ${item.name}` }, "Add");
    add.addEventListener("click", () => change(item.id, +1));
    card.appendChild(add);
    menu.appendChild(card);
  }
  refresh();
  showStoreState(restaurantId);
}

function clock(iso) {
  return new Date(iso).toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" });
}

// The restaurant's store state now (GET /api/v1/restaurants/{id}): paused, closed or busy, and
// the items it cannot sell now. Checkout would be refused anyway; this says so before.
async function showStoreState(restaurantId) {
  const notice = document.getElementById("store-state");
  notice.hidden = true;
  const response = await fetch(`/api/v1/restaurants/${encodeURIComponent(restaurantId)}`).catch(() => null);
  if (!response || !response.ok || cart.restaurantId !== restaurantId) return;
  const shop = await response.json();
  let text = "";
  if (shop.state === "PAUSED") {
    text = `${shop.name} takes no orders now${shop.pausedUntil ? `, until ${clock(shop.pausedUntil)}` : ""}.`;
  } else if (!shop.open) {
    text = `${shop.name} is closed now.`;
  } else if (shop.state === "BUSY") {
    text = `${shop.name} is busy: your order takes about ${shop.extraPrepMinutes} minutes longer.`;
  }
  notice.textContent = text;
  notice.hidden = !text;
  for (const item of shop.availability) {
    if (item.available) continue;
    const card = document.querySelector(`#menu [data-product="${CSS.escape(item.productId)}"]`);
    if (!card) continue;
    card.classList.add("sold-out");
    card.querySelector(".price").textContent = `sold out until ${clock(item.snoozedUntil)}`;
    card.querySelector("button").disabled = true;
  }
}

function change(productId, by) {
  const quantity = (cart.quantities.get(productId) || 0) + by;
  if (quantity <= 0) cart.quantities.delete(productId);
  else cart.quantities.set(productId, Math.min(quantity, 100));
  refresh();
}

function cartBody() {
  const products = [...cart.quantities].map(([productId, quantity]) => ({ productId, quantity }));
  return { restaurantId: cart.restaurantId, products, deliveryDelay: deliveryDelay() };
}

// Milliseconds until the chosen time (0 for "as soon as possible"); null if the time is missing or past.
function deliveryDelay() {
  if (document.querySelector("input[name=when]:checked").value !== "later") return 0;
  const at = document.getElementById("deliver-at").value;
  const delay = at ? new Date(at).getTime() - Date.now() : -1;
  return delay > 0 ? Math.min(MAX_DELAY_MS, delay) : null;
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, data };
}

function showError(message) {
  const error = document.getElementById("error");
  error.textContent = message || "";
  error.hidden = !message;
}

let quoting = 0;
async function refresh() {
  const lines = document.getElementById("cart-lines");
  const total = document.getElementById("total");
  const checkout = document.getElementById("checkout");
  lines.replaceChildren();
  showError("");
  if (cart.quantities.size === 0) {
    lines.appendChild(element("li", { class: "empty" }, "Nothing yet: add something from the menu."));
    total.textContent = "–";
    checkout.disabled = true;
    return;
  }
  const shop = restaurant();
  for (const [productId, quantity] of cart.quantities) {
    const item = shop.menu.find((i) => i.id === productId);
    const line = element("li", { "data-line": productId });
    line.appendChild(element("span", { class: "name" }, `${quantity} × ${item.name}`));
    for (const [label, by, text] of [["one less", -1, "−"], ["one more", +1, "+"], ["remove", -quantity, "✕"]]) {
      const button = element("button", { "aria-label": `${label} ${item.name}` }, text);
      button.addEventListener("click", () => change(productId, by));
      line.appendChild(button);
    }
    lines.appendChild(line);
  }
  const mine = ++quoting;
  total.textContent = "…";
  checkout.disabled = true;
  const body = cartBody();
  const { ok, data } = await post("/store/quote", { ...body, deliveryDelay: body.deliveryDelay || 0 });
  if (mine !== quoting) return; // a newer change is being priced
  if (!ok) {
    total.textContent = "–";
    return showError(problem(data));
  }
  total.textContent = money(data.totalCost);
  if (body.deliveryDelay === null) return showError("choose a delivery time in the future");
  checkout.disabled = false;
}

async function checkout() {
  const button = document.getElementById("checkout");
  button.disabled = true;
  button.textContent = "Placing your order…";
  const { ok, data } = await post("/store/checkout", cartBody());
  if (!ok) {
    showError(problem(data));
    button.disabled = false;
    button.textContent = "Check out";
    return;
  }
  localStorage.setItem("foodorder.lastOrder", data.url);
  window.location.assign(data.url);
}

function showLastOrder() {
  const url = localStorage.getItem("foodorder.lastOrder");
  if (!url) return;
  const paragraph = document.getElementById("last-order");
  paragraph.querySelector("a").href = url;
  paragraph.querySelector("a").textContent = "follow it";
  paragraph.hidden = false;
}

document.getElementById("checkout").addEventListener("click", checkout);
for (const input of document.querySelectorAll("input[name=when], #deliver-at")) {
  input.addEventListener("change", () => cart.quantities.size && refresh());
}
showRestaurants();
showLastOrder();
choose(CATALOG.restaurants[0].id);
