// The console's script: the token lives in this tab's sessionStorage only; every piece of
// data comes from the API with it and is put on the page as text (never as HTML).
"use strict";

const TOKEN_KEY = "streamguard.token";
const page = document.body.dataset.page;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function toLogin() {
  const next = location.pathname + location.search;
  location.assign("/console/login?next=" + encodeURIComponent(next));
}

async function api(path, options = {}) {
  const response = await apiResponse(path, options);
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body?.error?.message || response.statusText);
  return body;
}

// The response itself (a CSV, say); a form (FormData) is sent as it is, anything else as JSON.
async function apiResponse(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Authorization: "Bearer " + token, ...(options.headers || {}) };
  const form = options.body instanceof FormData;
  if (options.body !== undefined && !form) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    ...options,
    headers,
    body: options.body === undefined || form ? options.body : JSON.stringify(options.body),
  });
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    toLogin();
    throw new Error("signed out");
  }
  return response;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function status(id, text, error = false) {
  const node = document.getElementById(id);
  node.textContent = text;
  node.classList.toggle("error", error);
}

// --- sign in -------------------------------------------------------------------------------

async function login() {
  const form = document.getElementById("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = document.getElementById("token").value.trim();
    const response = await fetch("/v1/whoami", { headers: { Authorization: "Bearer " + token } });
    if (!response.ok) {
      status("login-error", "That token is not accepted.", true);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    const next = new URLSearchParams(location.search).get("next") || "/console/";
    location.assign(next.startsWith("/console") ? next : "/console/");
  });
}

async function whoami() {
  const { role } = await api("/v1/whoami");
  document.getElementById("whoami").textContent = "signed in: " + role;
  document.body.dataset.role = role;
  for (const node of document.querySelectorAll(".operator-only button, button.operator-only")) {
    node.disabled = role !== "operator";
  }
  const out = document.getElementById("sign-out");
  out.hidden = false;
  out.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    toLogin();
  });
}

// --- rooms ---------------------------------------------------------------------------------

function lastVerdict(result) {
  if (!result) return "—";
  const v = result.verdict;
  const judged = v.outcome === "moderated" ? `${v.suggestion} ${v.label} (${result.risk})` : v.outcome;
  return `${judged} at ${when(result.segment.ended_at)}`;
}

async function loadRooms() {
  try {
    const { rooms } = await api("/v1/rooms");
    const body = document.querySelector("#rooms tbody");
    body.replaceChildren(
      ...rooms.map((room) => {
        const detach = el("button", { type: "button", class: "operator-only", text: "Detach" });
        detach.disabled = document.body.dataset.role !== "operator";
        detach.addEventListener("click", () => detachRoom(room.id));
        const incidents = el("a", {
          href: "/console/incidents?room=" + encodeURIComponent(room.room || room.id),
          text: String(room.open_incidents),
        });
        return el(
          "tr",
          { "data-stream": room.id },
          el("td", { text: room.id }),
          el("td", { text: room.room || room.id }),
          el("td", {}, el("span", { class: "state state-" + room.state, text: room.state })),
          el("td", { text: when(room.last_audio_at) }),
          el("td", { text: lastVerdict(room.last_result) }),
          el("td", {}, incidents),
          el("td", { class: "error", text: room.last_error || "" }),
          el("td", {}, detach),
        );
      }),
    );
    status("rooms-status", `${rooms.length} stream(s), updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    status("rooms-status", "Could not load the rooms: " + error.message, true);
  }
}

async function detachRoom(id) {
  if (!confirm(`Detach ${id}? Its partial segment is judged first.`)) return;
  try {
    await api("/v1/streams/" + encodeURIComponent(id), { method: "DELETE" });
  } catch (error) {
    status("rooms-status", "Could not detach: " + error.message, true);
  }
  await loadRooms();
}

function rooms() {
  const form = document.getElementById("attach-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const body = { id: data.id, url: data.url };
    if (data.room) body.room = data.room;
    if (data.profile) body.profile = data.profile;
    try {
      await api("/v1/streams", { method: "POST", body });
      form.reset();
      status("attach-error", "");
    } catch (error) {
      status("attach-error", error.message, true);
    }
    await loadRooms();
  });
  loadRooms();
  setInterval(loadRooms, 5000);
}

// --- incidents -----------------------------------------------------------------------------

async function incidents() {
  const form = document.getElementById("incident-filters");
  const params = new URLSearchParams(location.search);
  for (const [key, value] of params) if (form.elements[key]) form.elements[key].value = value;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) query.set(key, value);
    history.replaceState(null, "", "?" + query);
    loadIncidents(query);
  });
  loadIncidents(params);
}

async function loadIncidents(params) {
  const query = new URLSearchParams();
  for (const [key, value] of params) {
    if (!value) continue;
    // datetime-local is the browser's local time, without a zone: the API wants one.
    query.set(key, key === "since" || key === "until" ? new Date(value).toISOString() : value);
  }
  try {
    const { incidents } = await api("/v1/incidents?" + query);
    document.querySelector("#incidents tbody").replaceChildren(
      ...incidents.map((incident) =>
        el(
          "tr",
          { "data-incident": incident.id },
          el("td", {}, el("a", { href: "/console/incidents/" + encodeURIComponent(incident.id), text: when(incident.started_at) })),
          el("td", { text: incident.room_id }),
          el("td", { text: incident.label }),
          el("td", {}, el("span", { class: "risk risk-" + incident.peak_risk, text: incident.peak_risk })),
          el("td", { text: incident.segments }),
          el("td", { text: incident.state }),
        ),
      ),
    );
    status("incidents-status", `${incidents.length} incident(s), newest first`);
  } catch (error) {
    status("incidents-status", "Could not load the incidents: " + error.message, true);
  }
}

// --- one incident --------------------------------------------------------------------------

function highlighted(text, keywords) {
  // Keyword hits carry character offsets into the transcript: mark each, in order.
  const out = el("p", { class: "transcript" });
  const hits = [...keywords].sort((a, b) => a.text_start - b.text_start);
  let at = 0;
  for (const hit of hits) {
    if (hit.text_start < at || hit.text_end > text.length) continue;
    out.append(text.slice(at, hit.text_start));
    out.append(el("mark", { title: `${hit.label} · ${hit.library_name}`, text: text.slice(hit.text_start, hit.text_end) }));
    at = hit.text_end;
  }
  out.append(text.slice(at));
  return out;
}

function frameFigure(segment, evidence) {
  // A video frame's evidence is its JPEG: shown as a picture, with the time it was taken.
  const taken = `frame taken ${when(segment.started_at)}` +
    (segment.media_start != null ? ` (${Number(segment.media_start).toFixed(1)} s into the stream)` : "");
  return el("figure", { class: "frame" },
    el("img", { src: evidence.url, alt: "video frame " + segment.id, loading: "eager" }),
    el("figcaption", { text: taken }));
}

function segmentItem(entry) {
  const { segment, verdict, risk, evidence } = entry;
  const isFrame = Boolean(evidence && (evidence.media_type || "").startsWith("image/"));
  const item = el(
    "li",
    { "data-segment": segment.id, id: "segment-" + segment.id },
    el("h3", {}, `${when(segment.started_at)} — ${isFrame ? "video frame" : segment.duration + " s"} `,
      el("span", { class: "risk risk-" + risk.level, text: risk.level }),
      ` ${risk.suggestion} ${risk.label}${risk.sub_label ? "/" + risk.sub_label : ""} (score ${risk.score})`),
  );
  if (isFrame) {
    item.append(frameFigure(segment, evidence));
  } else {
    item.append(highlighted(verdict.text || "(no transcript)", verdict.keywords || []));
    if (evidence && evidence.url) {
      item.append(el("audio", { controls: "", preload: "metadata", src: evidence.url }));
    } else {
      item.append(el("p", { class: "muted", text: "No evidence clip kept for this segment." }));
    }
  }
  return item;
}

function showFeedback(entries) {
  document.getElementById("feedback-list").replaceChildren(
    ...entries.map((f) => el("li", { text: `${f.kind.replace("_", " ")} — ${when(f.created_at)}${f.note ? ": " + f.note : ""}` })),
  );
}

async function incident() {
  const id = document.getElementById("incident-id").dataset.incidentId;
  let found;
  try {
    found = await api("/v1/incidents/" + encodeURIComponent(id));
  } catch (error) {
    status("incident-status", error.message, true);
    return;
  }
  const info = found.incident;
  const summary = [
    ["Room", info.room_id], ["Stream", info.stream_id], ["Label", info.label],
    ["Peak risk", info.peak_risk], ["Started", when(info.started_at)],
    ["Ended", info.ended_at ? when(info.ended_at) : "still open"], ["Segments", info.segments],
  ];
  document.getElementById("incident-summary").replaceChildren(
    ...summary.flatMap(([key, value]) => [el("dt", { text: key }), el("dd", { text: value })]),
  );
  document.getElementById("timeline").replaceChildren(...found.segments.map(segmentItem));
  // Opened from a search hit: show that segment.
  const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target) {
    target.classList.add("target");
    target.scrollIntoView({ block: "center" });
  }
  document.getElementById("alerts").replaceChildren(
    ...found.alerts.map((a) => el("li", { text: `${a.incident.event} — ${when(a.detected_at)} — ${a.alert_id}` })),
  );
  showFeedback(found.feedback);
  status("incident-status", "");
  for (const button of document.querySelectorAll(".verdict-buttons button")) {
    button.addEventListener("click", () => judge(info, button.dataset.kind));
  }
}

async function judge(info, kind) {
  const note = document.getElementById("feedback-note").value;
  const body = { kind, incident_id: info.id, label: info.label };
  if (note) body.note = note;
  try {
    const entry = await api("/v1/feedback", { method: "POST", body });
    status("feedback-status", `Stored: ${entry.kind.replace("_", " ")}.`);
    const { feedback } = await api("/v1/incidents/" + encodeURIComponent(info.id));
    showFeedback(feedback);
  } catch (error) {
    status("feedback-status", "Not stored: " + error.message, true);
  }
}

// --- start ---------------------------------------------------------------------------------

// The search, try and usage pages add themselves from their own scripts (loaded after this one).
const PAGES = { rooms, incidents, incident };

function start() {
  if (page === "login") {
    login();
  } else if (!sessionStorage.getItem(TOKEN_KEY)) {
    toLogin();
  } else {
    whoami().then(() => PAGES[page]?.()).catch((error) => console.error(error));
  }
}

// After every deferred script ran, so that each page's own script has added itself.
document.addEventListener("DOMContentLoaded", start);
