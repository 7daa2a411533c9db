// The live page: one server-sent event stream (/-/events) carries the
// whole state shown here; the search asks GET /{user} and /-/clicks.
"use strict";

const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat();
const fmtRate = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const fmtShare = new Intl.NumberFormat(undefined, { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });

let stream = null;
let last = null;      // the last state received
let looked = "";      // the user the search shows, refreshed live
let lookedAt = 0;

function connect() {
  if (stream) stream.close();
  setStatus("connecting", "Connecting…");
  stream = new EventSource("/-/events?top=" + encodeURIComponent($("limit").value));
  stream.onmessage = (ev) => {
    let st;
    try { st = JSON.parse(ev.data); } catch (e) { return; }
    last = st;
    render(st);
  };
  // EventSource reconnects by itself; say so meanwhile.
  stream.onerror = () => setStatus("down", "Disconnected from clicks; reconnecting…");
}

function setStatus(state, text) {
  const s = $("status");
  if (s.dataset.state === state && $("status-text").textContent === text) return;
  s.dataset.state = state;
  $("status-text").textContent = text;
}

function render(st) {
  const view = st.parts && st.parts.view;
  if (!st.connected) {
    setStatus("down", "Live, but the Kafka brokers do not answer");
  } else if (!st.known) {
    setStatus("behind", view && !view.ready ? "Live · loading the table…" : "Live · counting the table…");
  } else if (st.caughtUp) {
    setStatus("live", "Live · caught up");
  } else {
    setStatus("behind", "Live · catching up");
  }
  $("total").textContent = st.known ? fmt.format(st.total) : "–";
  $("users").textContent = st.known ? fmt.format(st.users) : "–";
  $("rate").textContent = st.known ? fmtRate.format(st.rate) : "–";
  $("lag").textContent = view && view.lag >= 0 ? fmt.format(view.lag) : "–";
  renderProcessor(st.processor);
  renderTop(st.known ? st.top : [], st.total);
  if (looked && Date.now() - lookedAt > 1000) lookUp(looked, false);
}

// renderProcessor shows what this instance's processor did, if it has
// one: clicks counted, forwarded, and not counted, by reason (a click
// delivered again is not among them: it was counted, once).
function renderProcessor(p) {
  $("processor").hidden = !p;
  if (!p) return;
  const why = { no_key: "without a user key", unreadable_value: "for a user whose stored count cannot be read", unreadable_forward: "unreadable in the loop topic" };
  let skipped = 0;
  const parts = [];
  for (const [reason, text] of Object.entries(why)) {
    const n = (p.skipped && p.skipped[reason]) || 0;
    skipped += n;
    if (n > 0) parts.push(fmt.format(n) + " " + text);
  }
  $("counted").textContent = fmt.format(p.counted);
  $("forwarded").textContent = fmt.format(p.forwarded);
  $("skipped").textContent = fmt.format(skipped);
  $("skipped-why").textContent = parts.length ? " (" + parts.join(", ") + ")" : "";
}

// Rows and bars are kept per user and moved, not rebuilt, so the page
// does not flicker and a reader's place is kept. The chart shows the
// first maxBars users; the table all that were asked for.
const rows = new Map();
const bars = new Map();
const maxBars = 20;

function renderTop(top, total) {
  const body = $("rows");
  const chart = $("chart");
  const seen = new Set();
  const maxClicks = top.length ? top[0].clicks : 0;
  top.forEach((u, i) => {
    seen.add(u.user);
    let tr = rows.get(u.user);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.user = u.user;
      for (const cls of ["num rank", "user", "num clicks", "num share"]) {
        const td = document.createElement("td");
        td.className = cls;
        tr.appendChild(td);
      }
      tr.children[1].textContent = u.user;
      rows.set(u.user, tr);
    }
    tr.children[0].textContent = i + 1;
    tr.children[2].textContent = fmt.format(u.clicks);
    tr.children[3].textContent = total > 0 ? fmtShare.format(u.clicks / total) : "–";
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);

    if (i >= maxBars) return;
    let li = bars.get(u.user);
    if (!li) {
      li = document.createElement("li");
      li.className = "bar";
      li.dataset.user = u.user;
      li.innerHTML = '<span class="bar-label"></span><span class="bar-track"><span class="bar-fill"></span></span><span class="bar-value"></span>';
      li.querySelector(".bar-label").textContent = u.user;
      bars.set(u.user, li);
    }
    li.querySelector(".bar-fill").style.width = (maxClicks > 0 ? (100 * u.clicks) / maxClicks : 0) + "%";
    li.querySelector(".bar-value").textContent = fmt.format(u.clicks);
    li.setAttribute("aria-label", u.user + ": " + fmt.format(u.clicks) + " clicks");
    if (chart.children[i] !== li) chart.insertBefore(li, chart.children[i] || null);
  });
  for (const [user, tr] of rows) {
    if (!seen.has(user)) { tr.remove(); rows.delete(user); }
  }
  const charted = new Set(top.slice(0, maxBars).map((u) => u.user));
  for (const [user, li] of bars) {
    if (!charted.has(user)) { li.remove(); bars.delete(user); }
  }
  $("empty").hidden = top.length > 0;
}

// lookUp shows one user's count (GET /{user}) and, when asked, the users
// whose ID starts with the text (GET /-/clicks?prefix=).
async function lookUp(user, withMatches) {
  looked = user;
  lookedAt = Date.now();
  const result = $("result");
  try {
    const res = await fetch("/" + encodeURIComponent(user), { headers: { Accept: "application/json" } });
    const body = await res.json().catch(() => ({}));
    if (user !== looked) return; // a newer search won
    result.replaceChildren();
    if (res.ok) {
      const strong = document.createElement("strong");
      strong.textContent = fmt.format(body.Clicks);
      result.append(user + ": ", strong, body.Clicks === 1 ? " click" : " clicks");
      result.dataset.clicks = body.Clicks;
    } else {
      result.textContent = res.status === 404 ? "No clicks for " + user + " yet." : (body.error || "Error " + res.status);
      delete result.dataset.clicks;
    }
  } catch (e) {
    result.textContent = "Cannot reach clicks: " + e.message;
  }
  if (withMatches) showMatches(user);
}

async function showMatches(prefix) {
  const list = $("matches");
  try {
    const res = await fetch("/-/clicks?limit=10&prefix=" + encodeURIComponent(prefix));
    if (!res.ok) { list.replaceChildren(); return; }
    const body = await res.json();
    list.replaceChildren(...body.users.filter((u) => u.user !== prefix).map((u) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = u.user + " · " + fmt.format(u.clicks);
      b.addEventListener("click", () => { $("q").value = u.user; lookUp(u.user, false); });
      li.appendChild(b);
      return li;
    }));
  } catch (e) {
    list.replaceChildren();
  }
}

$("find").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const user = $("q").value.trim();
  if (user) lookUp(user, true);
});
$("limit").addEventListener("change", connect);
connect();
