// tracker ui: plots from the server's JSON, a running run's new points and output, the column chooser.
"use strict";
const POLL_MS = 1000;  // a running run's news appear within 2 s
const PLOT_CONFIG = {displaylogo: false, responsive: true};

async function getJSON(url) {
  const response = await fetch(url, {credentials: "same-origin"});
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function metricURL(runId, name, extra) {
  return "/api/metric?" + new URLSearchParams({id: runId, name: name, ...extra});
}

// Each <script type="application/json" class="figure" data-div="ID"> holds a plotly figure for the div ID.
function drawFigures() {
  for (const script of document.querySelectorAll("script.figure")) {
    const figure = JSON.parse(script.textContent);
    // Legends below the plot: long run names would squeeze a plot beside them.
    const below = {legend: {orientation: "h", y: -0.3, yanchor: "top"}, margin: {b: 40}};
    Plotly.newPlot(script.dataset.div, figure.data, {...below, ...figure.layout}, PLOT_CONFIG);
  }
}

// The plots of a run's metric families; the folded ones (sys.*, time.*) when their <details> opens.
async function drawRun(run) {
  const lastStep = {};
  const draw = families => Promise.all(families.map(([family, members]) => drawFamily(run, family, members, lastStep)));
  const plots = await draw(run.families.filter(([, , folded]) => !folded));
  const folded = document.getElementById("folded");
  if (folded) {
    folded.addEventListener("toggle", async () => {
      if (folded.dataset.drawn) return;
      folded.dataset.drawn = "yes";
      plots.push(...await draw(run.families.filter(([, , isFolded]) => isFolded)));
    });
  }
  if (run.status === "RUNNING") follow(run, plots, lastStep);
}

async function drawFamily(run, family, members, lastStep) {
  const div = document.getElementById("plot-" + family);
  const series = await Promise.all(members.map(name => getJSON(metricURL(run.id, name, {}))));
  const traces = series.map((points, index) => ({x: points.steps, y: points.values, name: members[index],
                                                 type: "scatter", mode: "lines+markers", marker: {size: 4}}));
  members.forEach((name, index) => { lastStep[name] = series[index].steps.at(-1) ?? -1; });
  const layout = {title: {text: family}, margin: {l: 50, r: 20, t: 40, b: 40}, xaxis: {title: {text: "step"}},
                  showlegend: true, legend: {orientation: "h"}};
  await Plotly.newPlot(div, traces, layout, PLOT_CONFIG);
  div.on("plotly_relayout", event => zoom(run, div, members, event));
  return {div, members};
}

// Zooming in asks for the points of the shown range, downsampled again; zooming out, for the whole series.
async function zoom(run, div, members, event) {
  const range = event["xaxis.range[0]"] !== undefined ? {start: event["xaxis.range[0]"], end: event["xaxis.range[1]"]}
              : event["xaxis.autorange"] ? {} : null;
  if (range === null) return;
  const series = await Promise.all(members.map(name => getJSON(metricURL(run.id, name, range))));
  Plotly.restyle(div, {x: series.map(points => points.steps), y: series.map(points => points.values)});
}

async function follow(run, plots, lastStep) {
  const output = document.getElementById("output");
  const status = document.getElementById("status");
  for (;;) {  // one poll at a time: a slow answer never makes two ask for the same points
    await new Promise(resolve => setTimeout(resolve, POLL_MS));
    for (const {div, members} of plots) {
      const news = await Promise.all(members.map(name =>
        getJSON(metricURL(run.id, name, {since: lastStep[name]}))));
      const indices = news.map((points, index) => index).filter(index => news[index].steps.length);
      if (!indices.length) continue;
      Plotly.extendTraces(div, {x: indices.map(i => news[i].steps), y: indices.map(i => news[i].values)}, indices);
      indices.forEach(i => { lastStep[members[i]] = news[i].steps.at(-1); });
    }
    const tail = await getJSON("/api/output?" + new URLSearchParams({id: run.id, offset: output.dataset.offset}));
    if (tail.text) {
      output.textContent += tail.text;
      output.scrollTop = output.scrollHeight;
    }
    output.dataset.offset = tail.offset;
    if (tail.status !== "RUNNING") {
      status.textContent = tail.status;
      status.className = "status " + tail.status;
      return;
    }
  }
}

// Each artifact's preview, read once the page is drawn: a large checkpoint never holds the page back. The parts come
// from our own templates, every value escaped.
async function fillPreviews() {
  await Promise.all([...document.querySelectorAll(".preview-body[data-src]")].map(async box => {
    const response = await fetch(box.dataset.src, {credentials: "same-origin"});
    box.innerHTML = response.ok ? await response.text() : `<p class="note">no preview (${response.status})</p>`;
  }));
}

function chooseColumns() {
  const button = document.getElementById("apply-columns");
  if (!button) return;
  button.addEventListener("click", () => {
    // The shown columns keep their order; newly chosen ones come after them.
    const shown = document.getElementById("cols").value.split(",");
    const checked = [...document.querySelectorAll("input.col:checked")].map(box => box.value);
    const chosen = [...shown.filter(key => checked.includes(key)), ...checked.filter(key => !shown.includes(key))];
    document.getElementById("cols").value = chosen.join(",");
  });
}

document.addEventListener("DOMContentLoaded", () => {
  chooseColumns();
  drawFigures();
  fillPreviews();
  const run = document.getElementById("run-data");
  if (run) drawRun(JSON.parse(run.textContent));
});
