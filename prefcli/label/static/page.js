// prefcli label: the whole page. No build step; every request carries the token from this page's URL.
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
let view = null;
let shownAt = 0;
let busy = false;

function api(path, body) {
  const opts = { headers: { "X-Prefcli-Token": token, "Content-Type": "application/json" } };
  if (body !== undefined) { opts.method = "POST"; opts.body = JSON.stringify(body); }
  return fetch(path, opts).then((r) => r.json().then((j) => ({ status: r.status, body: j })));
}

function img(id) { return "image/" + id + "?token=" + encodeURIComponent(token); }

function render(v) {
  view = v;
  const p = v.progress;
  $("who").textContent = v.user + " · " + v.strategy;
  $("progress").textContent = p.answered + " / " + p.target + " answered" + (p.skips ? " · " + p.skips + " skipped" : "");
  $("message").textContent = v.message || (v.problems && v.problems.length ? v.problems[v.problems.length - 1] : "");
  if (v.pair) {
    $("done").hidden = true;
    $("labelling").hidden = false;
    $("prompt").textContent = v.pair.prompt;
    for (const side of ["left", "right"]) {
      const el = $(side);
      el.parentElement.classList.remove("chosen");
      el.src = img(v.pair[side]);
    }
    $("comment").value = "";
    shownAt = performance.now();
  } else {
    $("labelling").hidden = true;
    $("done").hidden = false;
    $("done-title").textContent = v.exhausted ? "The pool ran out" : "Done";
    $("done-message").textContent = v.message;
    $("written").replaceChildren(...v.written.map((w) => { const li = document.createElement("li"); li.textContent = w; return li; }));
    $("next").textContent = v.next.join("\n");
  }
  document.body.dataset.answered = String(p.answered);
  document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);  // tests wait on this
}

function send(choice) {
  if (busy || !view || !view.pair) return;
  busy = true;
  if (choice === "left" || choice === "right") $(choice).parentElement.classList.add("chosen");
  api("api/answer", { pair: view.pair.token, choice: choice, comment: $("comment").value,
                      rt_ms: Math.round(performance.now() - shownAt) })
    .then((r) => { busy = false; if (r.body.error) $("message").textContent = r.body.error; else render(r.body); })
    .catch(() => { busy = false; $("message").textContent = "the server is not answering: is prefcli label still running?"; });
}

function undo() {
  if (busy) return;
  busy = true;
  api("api/undo", {}).then((r) => { busy = false; render(r.body); })
    .catch(() => { busy = false; $("message").textContent = "the server is not answering"; });
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const typing = document.activeElement === $("comment");
  if (typing) {
    if (e.key === "Enter" || e.key === "Escape") { $("comment").blur(); e.preventDefault(); }
    return;
  }
  const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  const act = { ArrowLeft: "left", "1": "left", ArrowRight: "right", "2": "right", t: "tie", s: "skip" }[k];
  if (act) { send(act); e.preventDefault(); }
  else if (k === "u") { undo(); e.preventDefault(); }
  else if (k === "c" && view && view.pair) { $("comment").focus(); e.preventDefault(); }
});
for (const side of ["left", "right"]) $(side).addEventListener("click", () => send(side));

api("api/state").then((r) => {
  if (r.status === 403) { $("message").textContent = "missing or wrong token: open the URL that prefcli label printed"; return; }
  render(r.body);
}).catch(() => { $("message").textContent = "the server is not answering"; });
