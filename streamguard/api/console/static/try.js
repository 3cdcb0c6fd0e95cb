// Try it: judge an uploaded file (/v1/moderate/file) or a URL (/v1/moderate/url) once, and
// show each segment's verdict. Nothing is stored. Uses console.js's helpers.
"use strict";

function seconds(value) {
  const m = Math.floor(value / 60);
  const s = (value - 60 * m).toFixed(1).padStart(4, "0");
  return `${m}:${s}`;
}

function showReport(report) {
  const summary = [
    ["Source", report.source], ["Profile", report.profile], ["Engine", report.engine],
    ["Segments", `${report.segments.length} of ${report.segment_seconds} s`],
    ["Heard", `${report.seconds_heard} s${report.truncated ? " (the rest was not judged)" : ""}`],
  ];
  if (report.error) summary.push(["Stopped", report.error]);
  document.getElementById("try-summary").replaceChildren(
    ...summary.flatMap(([key, value]) => [el("dt", { text: key }), el("dd", { text: value })]),
  );
  const table = document.getElementById("try-results");
  table.querySelector("tbody").replaceChildren(
    ...report.segments.map((s) =>
      el(
        "tr",
        { "data-seq": String(s.seq), "data-suggestion": s.suggestion },
        el("td", { text: `${seconds(s.start)}–${seconds(s.end)}` }),
        el("td", { text: s.outcome, title: s.reason }),
        el("td", { class: "verdict", text: `${s.suggestion} ${s.label}${s.sub_label ? "/" + s.sub_label : ""} (score ${s.score})` }),
        el("td", {}, el("span", { class: "risk risk-" + s.risk, text: s.risk })),
        el("td", { text: s.would_alert ? "yes" : "no" }),
        el("td", {}, highlighted(s.text || "", s.keywords)),
      ),
    ),
  );
  table.hidden = false;
  const flagged = report.segments.filter((s) => s.suggestion !== "Pass").length;
  status("try-status", `Judged: ${report.segments.length} segment(s), ${flagged} flagged. Nothing was stored.`);
}

async function tryIt(form, path, body) {
  const buttons = document.querySelectorAll("#try-file-form button, #try-url-form button");
  for (const button of buttons) button.disabled = true;
  document.getElementById("try-results").hidden = true;
  document.getElementById("try-summary").replaceChildren();
  status("try-status", "Judging… (this can take a while for a long recording)");
  try {
    showReport(await api(path, { method: "POST", body }));
  } catch (error) {
    status("try-status", "Not judged: " + error.message, true);
  } finally {
    for (const button of buttons) button.disabled = document.body.dataset.role !== "operator";
  }
}

function tryPage() {
  const fileForm = document.getElementById("try-file-form");
  fileForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = new FormData();
    for (const [key, value] of new FormData(fileForm)) if (value) body.append(key, value);
    tryIt(fileForm, "/v1/moderate/file", body);
  });
  const urlForm = document.getElementById("try-url-form");
  urlForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = {};
    for (const [key, value] of new FormData(urlForm)) {
      if (value) body[key] = key === "segment_seconds" ? Number(value) : value;
    }
    tryIt(urlForm, "/v1/moderate/url", body);
  });
  if (document.body.dataset.role !== "operator") {
    status("try-status", "Trying needs the API token: the viewer token only reads.");
  }
}

PAGES.try = tryPage;
