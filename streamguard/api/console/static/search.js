// Search: transcripts and labels across results (/v1/results?q=, SQLite FTS5), newest first,
// a page at a time. Uses console.js's helpers (el, api, when, status, highlighted).
"use strict";

const SEARCH_PAGE = 25;
const WORD = /[\p{L}\p{N}]+/gu;

// As FTS5's unicode61 tokenizer (remove_diacritics 2) folds a word: case and accents off.
function folded(word) {
  return word.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
}

function matched(text, words) {
  // Mark every word of the text the query asked for, the rest as plain text.
  const out = el("p", { class: "transcript" });
  let at = 0;
  for (const found of text.matchAll(WORD)) {
    if (!words.has(folded(found[0]))) continue;
    out.append(text.slice(at, found.index));
    out.append(el("mark", { class: "match", text: found[0] }));
    at = found.index + found[0].length;
  }
  out.append(text.slice(at));
  return out;
}

async function playClip(hit, button) {
  // The incident hands out the clip's signed URL (an <audio> element cannot send the token).
  button.disabled = true;
  try {
    const found = await api("/v1/incidents/" + encodeURIComponent(hit.incident_id));
    const entry = found.segments.find((s) => s.segment.id === hit.segment.segment_id);
    if (!entry?.evidence?.url) throw new Error("no clip was kept for this segment");
    // A video frame's evidence is its JPEG: shown as a picture (console.js's frameFigure).
    const isFrame = (entry.evidence.media_type || "").startsWith("image/");
    button.replaceWith(isFrame ? frameFigure(entry.segment, entry.evidence)
      : el("audio", { controls: "", preload: "metadata", src: entry.evidence.url }));
  } catch (error) {
    button.replaceWith(el("span", { class: "muted", text: error.message }));
  }
}

function hitItem(hit, words) {
  const { segment, verdict } = hit;
  const id = segment.segment_id;
  const label = verdict.label + (verdict.sub_label ? "/" + verdict.sub_label : "");
  const item = el(
    "li",
    { "data-segment": id },
    el("h3", {}, `${when(segment.started_at)} — ${hit.room_id} `,
      el("span", { class: "risk risk-" + hit.risk, text: hit.risk }), " ",
      words.has(folded(verdict.label)) ? el("mark", { class: "match", text: label }) : label,
      ` · ${verdict.outcome}`),
    matched(verdict.text || "(no transcript)", words),
  );
  const links = el("p", { class: "hit-links" });
  if (hit.incident_id) {
    const href = `/console/incidents/${encodeURIComponent(hit.incident_id)}#segment-${encodeURIComponent(id)}`;
    const play = el("button", { type: "button", class: "play", text: "Play clip" });
    play.addEventListener("click", () => playClip(hit, play));
    links.append(el("a", { href, class: "open-incident", text: "Open incident" }), " ", play);
  } else {
    links.append(el("span", { class: "muted", text: "No incident: no clip kept." }));
  }
  item.append(links);
  return item;
}

function searchQuery(form) {
  const query = new URLSearchParams();
  for (const [key, value] of new FormData(form)) {
    if (!value) continue;
    query.set(key, key === "since" || key === "until" ? new Date(value).toISOString() : value);
  }
  return query;
}

async function runSearch(form, cursor) {
  const query = searchQuery(form);
  const words = new Set([...(query.get("q") || "").matchAll(WORD)].map((m) => folded(m[0])));
  query.set("order", "newest");
  query.set("limit", String(SEARCH_PAGE));
  if (cursor) query.set("cursor", cursor);
  const list = document.getElementById("hits");
  const more = document.getElementById("search-more");
  try {
    const found = await api("/v1/results?" + query);
    const items = found.results.map((hit) => hitItem(hit, words));
    if (cursor) list.append(...items);
    else list.replaceChildren(...items);
    more.hidden = !found.next_cursor;
    more.onclick = () => runSearch(form, found.next_cursor);
    status("search-status", `${list.children.length} result(s), newest first${found.next_cursor ? "; more below" : ""}`);
  } catch (error) {
    status("search-status", "Could not search: " + error.message, true);
  }
}

function search() {
  const form = document.getElementById("search-form");
  const params = new URLSearchParams(location.search);
  for (const [key, value] of params) if (form.elements[key]) form.elements[key].value = value;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const shown = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) shown.set(key, value);
    history.replaceState(null, "", "?" + shown);
    runSearch(form, null);
  });
  if ([...params.values()].some(Boolean)) runSearch(form, null);
}

PAGES.search = search;
