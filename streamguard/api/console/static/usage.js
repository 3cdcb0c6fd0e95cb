// Usage: minutes ingested, moderated and skipped per UTC day (a stacked bar chart) and per
// label (bars), drawn here as SVG from /v1/usage; the CSV comes from the same route.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PARTS = [
  ["minutes_moderated", "moderated", "#1f5fbf"],
  ["minutes_skipped_silent", "skipped (silent)", "#9fb7d9"],
  ["minutes_unjudged", "not judged", "#d9534f"],
];

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

function text(x, y, content, attrs = {}) {
  const node = svg("text", { x, y, "font-size": 11, fill: "#5d6778", ...attrs });
  node.textContent = content;
  return node;
}

function utcDay(date) {
  return date.toISOString().slice(0, 10);
}

function legend() {
  return el("p", { class: "legend" }, ...PARTS.map(([, name, colour]) =>
    el("span", {}, svg("svg", { width: 10, height: 10 }, svg("rect", { width: 10, height: 10, fill: colour })), " " + name)));
}

function dayChart(days) {
  // One stacked bar per day; the tallest day fills the height.
  const width = 720, height = 220, left = 48, bottom = 36, pad = 12;
  const top = Math.max(1, ...days.map((d) => d.minutes_ingested));
  const step = (width - left) / Math.max(days.length, 1);
  const chart = svg("svg", { viewBox: `0 -${pad} ${width} ${height + pad}`, role: "img", class: "usage-chart", "aria-label": "minutes per day" });
  for (const f of [0, 0.5, 1]) {
    const y = (height - bottom) * (1 - f);
    chart.append(svg("line", { x1: left, x2: width, y1: y, y2: y, stroke: "#d8dde6" }),
      text(0, y + 4, (top * f).toFixed(top * f < 10 ? 1 : 0) + " min"));
  }
  days.forEach((day, i) => {
    const x = left + i * step + step * 0.15;
    let y = height - bottom;
    for (const [key, name, colour] of PARTS) {
      const h = ((height - bottom) * day[key]) / top;
      if (h <= 0) continue;
      y -= h;
      const bar = svg("rect", { x, y, width: step * 0.7, height: h, fill: colour, "data-day": day.day, "data-part": key });
      bar.append(svg("title", {}, `${day.day}: ${day[key]} min ${name}`));
      chart.append(bar);
    }
    if (days.length <= 16 || i % Math.ceil(days.length / 16) === 0) {
      chart.append(text(x, height - bottom + 14, day.day.slice(5)));
    }
  });
  return chart;
}

function labelChart(labels) {
  // One horizontal bar per label, longest first.
  const sorted = [...labels].sort((a, b) => b.minutes_ingested - a.minutes_ingested);
  const row = 22, left = 140, width = 720;
  const top = Math.max(1, ...sorted.map((l) => l.minutes_ingested));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${row * sorted.length + 8}`, role: "img", class: "usage-chart", "aria-label": "minutes per label" });
  sorted.forEach((label, i) => {
    const w = ((width - left - 90) * label.minutes_ingested) / top;
    const y = 4 + i * row;
    const bar = svg("rect", { x: left, y, width: Math.max(w, 1), height: row - 6, fill: label.label === "Normal" ? "#9fb7d9" : "#d9534f", "data-label": label.label });
    bar.append(svg("title", {}, `${label.label}: ${label.minutes_ingested} min in ${label.segments} segment(s)`));
    chart.append(text(0, y + 12, label.label), bar, text(left + w + 6, y + 12, `${label.minutes_ingested} min`));
  });
  return chart;
}

function usageRange(form) {
  const query = new URLSearchParams();
  for (const key of ["from", "to"]) if (form.elements[key].value) query.set(key, form.elements[key].value);
  return query;
}

async function loadUsage(form) {
  try {
    const report = await api("/v1/usage?" + usageRange(form));
    const days = document.getElementById("usage-days");
    days.replaceChildren(...(report.days.length ? [dayChart(report.days), legend()] : [el("p", { class: "muted", text: "Nothing heard in this range." })]));
    document.getElementById("usage-labels").replaceChildren(...(report.labels.length ? [labelChart(report.labels)] : []));
    document.querySelector("#usage-table tbody").replaceChildren(
      ...report.days.map((d) => el("tr", { "data-day": d.day },
        ...[d.day, d.segments, d.minutes_ingested, d.minutes_moderated, d.minutes_skipped_silent, d.minutes_unjudged]
          .map((value) => el("td", { text: value })))),
    );
    const total = report.days.reduce((sum, d) => sum + d.minutes_ingested, 0);
    status("usage-status", `${report.days.length} day(s), ${total.toFixed(2)} minutes heard (UTC days)`);
  } catch (error) {
    status("usage-status", "Could not load the usage: " + error.message, true);
  }
}

async function downloadCsv(form) {
  // A link cannot carry the token: fetch the CSV, then save it from a blob: URL.
  try {
    const query = usageRange(form);
    query.set("format", "csv");
    const response = await apiResponse("/v1/usage?" + query);
    if (!response.ok) throw new Error((await response.json())?.error?.message || response.statusText);
    const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "")?.[1];
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: name || "streamguard-usage.csv" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    status("usage-status", "Could not export: " + error.message, true);
  }
}

function usage() {
  const form = document.getElementById("usage-form");
  const params = new URLSearchParams(location.search);
  const today = new Date();
  form.elements.to.value = params.get("to") || utcDay(today);
  form.elements.from.value = params.get("from") || utcDay(new Date(today.getTime() - 29 * 86_400_000));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    history.replaceState(null, "", "?" + usageRange(form));
    loadUsage(form);
  });
  document.getElementById("usage-csv").addEventListener("click", () => downloadCsv(form));
  loadUsage(form);
}

PAGES.usage = usage;
