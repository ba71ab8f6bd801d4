// The gateway's page: the upstream's status and the jobs, refreshed every second.
"use strict";
const root = document.body.dataset.root || "";
const $ = (selector) => document.querySelector(selector);

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function getJson(path) {
  const response = await fetch(root + path, { cache: "no-store" });
  return response.json();
}

function renderUpstream(info) {
  $("#upstream-address").textContent = info.upstream + (info.name ? ` (cluster ${info.name})` : "");
  const state = $("#upstream-state");
  state.textContent = info.reachable ? `reachable (${info.kind})` : "unreachable";
  state.className = "badge " + (info.reachable ? "ok" : "down");
  const error = $("#upstream-error");
  error.hidden = !info.error;
  error.textContent = info.error || "";
  const body = $("#servers tbody");
  body.replaceChildren();
  for (const [server, status] of Object.entries(info.servers || {}).sort()) {
    const row = document.createElement("tr");
    row.dataset.server = server;
    row.append(cell(server), cell(status.state || "?", "server-state"),
               cell(status.update_count || ""));
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = `${Object.keys(status).length} keys`;
    const pre = document.createElement("pre");
    pre.textContent = Object.entries(status).sort().map(([k, v]) => `${k}: ${v}`).join("\n");
    details.append(summary, pre);
    const td = document.createElement("td");
    td.append(details);
    row.append(td);
    body.append(row);
  }
  const proxy = $("#proxy");
  const proxies = Object.keys(info.proxy || {});
  proxy.hidden = proxies.length === 0;
  proxy.textContent = proxies.length ? `through the proxy ${proxies.join(", ")}` : "";
}

function seconds(value) {
  if (value === null || value === undefined) return "";
  return value < 90 ? `${value.toFixed(0)} s` : `${(value / 60).toFixed(1)} min`;
}

async function cancel(id) {
  await fetch(`${root}/v1/jobs/${id}`, { method: "DELETE" });
  refresh();
}

function renderJobs(jobs) {
  $("#no-jobs").hidden = jobs.length > 0;
  const body = $("#jobs tbody");
  body.replaceChildren();
  for (const job of jobs) {
    const row = document.createElement("tr");
    row.dataset.job = job.job;
    row.dataset.state = job.state;
    const percent = job.total ? (100 * job.done) / job.total : 100;
    const progress = document.createElement("td");
    progress.className = "progress";
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuenow", String(job.done));
    bar.setAttribute("aria-valuemax", String(job.total));
    const fill = document.createElement("span");
    fill.style.width = `${percent.toFixed(1)}%`;
    bar.append(fill);
    const text = document.createElement("span");
    text.className = "count";
    text.textContent = ` ${job.done}/${job.total}`;
    progress.append(bar, text);
    const action = document.createElement("td");
    if (job.state === "queued" || job.state === "running") {
      const button = document.createElement("button");
      button.textContent = "cancel";
      button.className = "cancel";
      button.onclick = () => cancel(job.job);
      action.append(button);
    }
    row.append(cell(job.job), cell(job.method), cell(job.state, `state state-${job.state}`),
               progress, cell(String(job.errors)), cell(job.rate ? `${Math.round(job.rate)}/s` : ""),
               cell(job.state === "running" ? seconds(job.eta) : ""), action);
    if (job.message) row.title = job.message;
    body.append(row);
  }
}

async function refresh() {
  try {
    const [info, jobs] = await Promise.all([getJson("/v1/upstream"), getJson("/v1/jobs")]);
    renderUpstream(info);
    renderJobs(jobs.jobs);
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    $("#updated").textContent = "cannot reach the gateway: " + error;
  }
}

refresh();
setInterval(refresh, 1000);
