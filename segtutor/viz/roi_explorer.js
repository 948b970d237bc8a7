// RoIPool versus RoIAlign: an anywidget ES module (segtutor/viz/roi_widget.py).
//
// Everything runs in the browser, so the explorer stays interactive in the static HTML book.
// The first half of this file is pure arithmetic with no DOM access; it is exported so that
// tests/js/roi_explorer.mjs can run it under node and compare it with segtutor.arithmetic.roi
// and with torchvision.ops.roi_pool / roi_align. The second half draws.
//
// The arithmetic is that of torchvision's CPU kernels (torchvision/csrc/ops/cpu/
// roi_pool_kernel.cpp, roi_align_kernel.cpp, roi_align_common.h), written with the same
// floating-point operations in the same order as segtutor/arithmetic/roi.py, so that the
// numbers are equal bit for bit (JavaScript numbers are doubles, as Python's floats).
// A box is [x1, y1, x2, y2] in input pixels; every pair is [rows, cols] (height first).
// Papers: Girshick, "Fast R-CNN" (RoIPool), https://arxiv.org/abs/1504.08083; He et al.,
// "Mask R-CNN" (RoIAlign), https://arxiv.org/abs/1703.06870.

// ---------------------------------------------------------------------------------------
// Arithmetic (pure functions; the same rules as segtutor.arithmetic.roi)
// ---------------------------------------------------------------------------------------

/** C's round(): halves away from zero (Math.round rounds -2.5 to -2, C to -3). */
export function roundHalfAway(value) {
  if (value < 0) return -roundHalfAway(-value);
  const whole = Math.floor(value);
  return whole + (value - whole >= 0.5 ? 1 : 0);
}

/**
 * The cells each RoIPool bin takes the maximum of (segtutor.arithmetic.roi_pool_bins).
 *
 * @param {number[]} box [x1, y1, x2, y2] in input pixels.
 * @param {number[]} outputSize [rows, cols] of bins.
 * @param {number} spatialScale feature-map size over input size.
 * @param {number[]|null} featureSize [height, width] to clip to, or null for unclipped bins.
 * @returns {{start: number[], end: number[], size: number[], binSize: number[],
 *   rows: number[][], cols: number[][]}} the rounded box's first and last cell (inclusive),
 *   its size in cells, the bin size, and each bin row's / column's [start, end) cells.
 */
export function poolBins(box, outputSize, spatialScale, featureSize = null) {
  const [x1, y1, x2, y2] = box;
  const start = [roundHalfAway(y1 * spatialScale), roundHalfAway(x1 * spatialScale)];
  const end = [roundHalfAway(y2 * spatialScale), roundHalfAway(x2 * spatialScale)];
  const size = [0, 1].map((axis) => Math.max(end[axis] - start[axis] + 1, 1));
  const binSize = [0, 1].map((axis) => size[axis] / outputSize[axis]);
  const spans = (axis) =>
    Array.from({ length: outputSize[axis] }, (_, i) => {
      let first = Math.floor(i * binSize[axis]) + start[axis];
      let last = Math.ceil((i + 1) * binSize[axis]) + start[axis];
      if (featureSize) [first, last] = [first, last].map((v) => Math.min(Math.max(v, 0), featureSize[axis]));
      return [first, last];
    });
  return { start, end, size, binSize, rows: spans(0), cols: spans(1) };
}

/** Whether RoIPool's bin (row, col) reads no cell (torchvision outputs 0 for it). */
export function poolBinEmpty(bins, row, col) {
  return bins.rows[row][1] <= bins.rows[row][0] || bins.cols[col][1] <= bins.cols[col][0];
}

/**
 * RoIAlign's bins and sample points (segtutor.arithmetic.roi_align_samples). Coordinates
 * are the kernel's: cell i's value sits at i.
 *
 * @returns {{start: number[], size: number[], binSize: number[], grid: number[],
 *   count: number, ys: number[][], xs: number[][], rowEdges: number[], colEdges: number[]}}
 */
export function alignSamples(box, outputSize, spatialScale, samplingRatio, aligned) {
  const [x1, y1, x2, y2] = box;
  const offset = aligned ? 0.5 : 0.0;
  const start = [y1 * spatialScale - offset, x1 * spatialScale - offset];
  const end = [y2 * spatialScale - offset, x2 * spatialScale - offset];
  let size = [0, 1].map((axis) => end[axis] - start[axis]);
  if (!aligned) size = size.map((n) => Math.max(n, 1.0)); // "force malformed RoIs to be 1x1"
  const binSize = [0, 1].map((axis) => size[axis] / outputSize[axis]);
  const grid = [0, 1].map((axis) =>
    Math.max(samplingRatio > 0 ? samplingRatio : Math.ceil(size[axis] / outputSize[axis]), 0));
  const points = (axis) =>
    Array.from({ length: outputSize[axis] }, (_, i) =>
      Array.from({ length: grid[axis] }, (_, k) => start[axis] + i * binSize[axis] + ((k + 0.5) * binSize[axis]) / grid[axis]));
  const edges = (axis) => Array.from({ length: outputSize[axis] + 1 }, (_, i) => start[axis] + i * binSize[axis]);
  return {
    start, size, binSize, grid, count: Math.max(grid[0] * grid[1], 1),
    ys: points(0), xs: points(1), rowEdges: edges(0), colEdges: edges(1),
  };
}

/**
 * The four bilinear taps of RoIAlign at (y, x) on a map of height x width, with the
 * kernel's border rule: nothing more than one cell outside the map, the border's value
 * inside that margin.
 *
 * @returns {number[][]} [[row, col, weight] x 4] in the kernel's order (w1..w4), or [].
 */
export function bilinearTaps(y, x, height, width) {
  if (!(y >= -1.0 && y <= height && x >= -1.0 && x <= width)) return [];
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  let yLow = Math.trunc(y);
  let xLow = Math.trunc(x);
  let yHigh;
  let xHigh;
  if (yLow >= height - 1) {
    yHigh = yLow = height - 1;
    y = yLow;
  } else {
    yHigh = yLow + 1;
  }
  if (xLow >= width - 1) {
    xHigh = xLow = width - 1;
    x = xLow;
  } else {
    xHigh = xLow + 1;
  }
  const ly = y - yLow;
  const lx = x - xLow;
  const hy = 1 - ly;
  const hx = 1 - lx;
  return [[yLow, xLow, hy * hx], [yLow, xHigh, hy * lx], [yHigh, xLow, ly * hx], [yHigh, xHigh, ly * lx]];
}

/** Offsets of per-axis bin edges drawn[axis][i] = [first, last] from exact[axis]. */
function edgeOffsets(drawn, exact) {
  const [rows, cols] = [0, 1].map((axis) =>
    drawn[axis].map(([first, last], i) => [first - exact[axis][i], last - exact[axis][i + 1]]));
  const flat = [...rows, ...cols].flat().map(Math.abs);
  let total = 0;
  for (const value of flat) total += value;
  return {
    box: [rows[0][0], cols[0][0], rows.at(-1)[1], cols.at(-1)[1]],
    rows, cols, maxOffset: Math.max(...flat), meanOffset: total / flat.length,
  };
}

/**
 * How far RoIPool's and RoIAlign's bin edges land from the box's exact ones, in input
 * pixels (segtutor.arithmetic.misalignment): input pixel p covers [p, p + 1), feature cell
 * i covers input [i / s, (i + 1) / s) and its value sits at the cell's centre.
 *
 * @returns {{pool: object, align: object}} each {box: [top, left, bottom, right], rows:
 *   [[top, bottom]...], cols: [[left, right]...], maxOffset, meanOffset}.
 */
export function misalignment(box, outputSize, spatialScale, aligned) {
  const pool = poolBins(box, outputSize, spatialScale);
  const align = alignSamples(box, outputSize, spatialScale, -1, aligned);
  const [x1, y1, x2, y2] = box;
  const exact = [[y1, y2], [x1, x2]].map(([low, high], axis) =>
    Array.from({ length: outputSize[axis] + 1 }, (_, i) => low + (i * (high - low)) / outputSize[axis]));
  const poolEdges = [pool.rows, pool.cols].map((spans) => spans.map(([s, e]) => [s / spatialScale, e / spatialScale]));
  const alignEdges = [align.rowEdges, align.colEdges].map((e) =>
    e.slice(0, -1).map((_, i) => [(e[i] + 0.5) / spatialScale, (e[i + 1] + 0.5) / spatialScale]));
  return { pool: edgeOffsets(poolEdges, exact), align: edgeOffsets(alignEdges, exact) };
}

/** A coordinate rounded to the sliders' quarter pixel (halves up; coordinates are >= 0). */
export function quarterPixel(value) {
  return Math.floor(value * 4 + 0.5) / 4;
}

/**
 * The box after a change of scale or map size, as the explorer (and RoIExplorer.select)
 * moves it: a new scale keeps it over the same cells (scaled by old / new, rounded to a
 * quarter pixel; the same scale leaves it unrounded), and it is clipped to the new input, [0, width / s] x [0, height / s].
 */
export function adjustBox(box, oldScale, newScale, featureSize) {
  const factor = oldScale / newScale;
  const limits = [featureSize[1] / newScale, featureSize[0] / newScale]; // x, y
  const moved = box.map((v, i) => Math.min(factor === 1 ? v : quarterPixel(v * factor), limits[i % 2]));
  return [Math.min(moved[0], moved[2]), Math.min(moved[1], moved[3]), moved[2], moved[3]];
}

/** A number for the readout: at most two decimals, no trailing zeros, no "-0". */
export function numberText(value) {
  const text = String(Number(value.toFixed(2)));
  return text === "-0" ? "0" : text;
}

// ---------------------------------------------------------------------------------------
// Drawing (SVG) and the anywidget view
// ---------------------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";
const PANEL_PX = { both: 290, pool: 560, align: 560 };
const MIN_CELL_PX = 6;
const MAX_CELL_PX = 44;
const MARGIN_CELLS = 1; // around the map: RoIPool's rounded box can end one cell outside
const HOVER_PX = 10; // how close the pointer must come to a sample point to pick it
const SAMPLE_PX = [1.5, 4]; // a sample point's radius: a tenth of a cell, within these
const INSET = 0.08; // cells between a RoIPool bin's rectangle and its cells' edges (overlaps show)

const BOX_SETTINGS = ["x1", "y1", "x2", "y2"];
const BOX_LABELS = { x1: "left x1", y1: "top y1", x2: "right x2", y2: "bottom y2" };

function json(value) {
  return JSON.stringify(value);
}

function slider(name, label, step) {
  return (
    `<label class="roi-control"><span class="roi-label">${label}</span>` +
    `<input type="range" step="${step}" data-setting="${name}" data-testid="roi-${name}" ` +
    `aria-label="${label}">` +
    `<output data-testid="roi-${name}-value"></output></label>`
  );
}

function menu(name, label, options) {
  const entries = options.map(([value, text]) => `<option value="${value}">${text}</option>`).join("");
  return (
    `<label class="roi-control"><span class="roi-label">${label}</span>` +
    `<select data-setting="${name}" data-testid="roi-${name}" aria-label="${label}">${entries}</select></label>`
  );
}

function scaleText(scale) {
  return scale === 1 ? "1 (stride 1)" : `1/${1 / scale} (stride ${1 / scale})`;
}

function samplingText(ratio) {
  return ratio > 0 ? `${ratio}×${ratio} per bin` : `${ratio} (adaptive)`;
}

function legendMarkup() {
  const swatch = (attributes) =>
    `<svg width="14" height="14" aria-hidden="true"><rect x="0.5" y="0.5" width="13" height="13" ${attributes}/></svg>`;
  const dot = `<svg width="14" height="14" aria-hidden="true"><circle cx="7" cy="7" r="3" class="roi-sample"/></svg>`;
  const entries = [
    [swatch('class="roi-cell"'), "feature-map cell"],
    [swatch('class="roi-exact-box"'), "the box, exact"],
    [swatch('class="roi-pool-box"'), "RoIPool: rounded box"],
    [swatch('class="roi-pool-bin roi-even"'), "RoIPool bins (overlaps darker)"],
    [swatch('class="roi-align-bin"'), "RoIAlign bins"],
    [dot, "RoIAlign sample points"],
    [swatch('class="roi-tap"'), "bilinear taps of the sample under the pointer"],
  ];
  return entries.map(([icon, text]) => `<span>${icon} ${text}</span>`).join("");
}

function panelMarkup(kind, title) {
  return `
    <figure class="roi-panel" data-testid="roi-${kind}-panel">
      <figcaption class="roi-title" data-testid="roi-${kind}-title">${title}</figcaption>
      <svg class="roi-drawing" data-testid="roi-${kind}-drawing" xmlns="${SVG_NS}" role="img"><g class="roi-scene"></g></svg>
    </figure>`;
}

function skeleton(model) {
  const limits = model.get("_limits");
  const scales = model.get("_scales").map((s) => [String(s), scaleText(s)]);
  const ratios = model.get("_sampling_ratios").map((r) => [String(r), samplingText(r)]);
  const modes = [["both", "side by side"], ["pool", "RoIPool only"], ["align", "RoIAlign only"]];
  return `
    <div class="roi-controls">
      ${BOX_SETTINGS.map((name) => slider(name, BOX_LABELS[name], limits.box_step)).join("")}
    </div>
    <div class="roi-controls">
      ${slider("feature-height", "map rows", 1)}${slider("feature-width", "map cols", 1)}
      ${menu("scale", "spatial_scale", scales)}
    </div>
    <div class="roi-controls">
      ${slider("output", "output size", 1)}${menu("sampling", "sampling_ratio", ratios)}
      <label class="roi-control"><input type="checkbox" data-setting="aligned" data-testid="roi-aligned"
        aria-label="aligned"><span class="roi-label">aligned</span></label>
      ${menu("mode", "show", modes)}
    </div>
    <div class="roi-panels">${panelMarkup("pool", "RoIPool")}${panelMarkup("align", "RoIAlign")}</div>
    <div class="roi-sample-readout" data-testid="roi-sample" aria-live="polite"></div>
    <div class="roi-readout" data-testid="roi-readout"></div>
    <div class="roi-misalignment" data-testid="roi-misalignment" aria-live="polite"></div>
    <div class="roi-legend">${legendMarkup()}</div>`;
}

function rect(x, y, width, height, attributes) {
  return `<rect x="${x}" y="${y}" width="${width}" height="${height}" ${attributes}/>`;
}

/** The map's cells and the exact box, in cell units (cell (r, c) covers [c, c+1) x [r, r+1)). */
function mapMarkup(kind, featureSize, box, scale) {
  const [height, width] = featureSize;
  const lines = [];
  for (let r = 0; r <= height; r++) lines.push(`M0 ${r}H${width}`);
  for (let c = 0; c <= width; c++) lines.push(`M${c} 0V${height}`);
  const [x1, y1, x2, y2] = box.map((v) => v * scale);
  return {
    below: rect(0, 0, width, height, 'class="roi-cell"') + `<path class="roi-grid" d="${lines.join("")}"/>`,
    exact: rect(x1, y1, x2 - x1, y2 - y1, `class="roi-exact-box" data-testid="roi-${kind}-exact"`),
  };
}

function poolMarkup(bins, featureSize) {
  const parts = [];
  bins.rows.forEach(([r0, r1], i) => {
    bins.cols.forEach(([c0, c1], j) => {
      if (r1 <= r0 || c1 <= c0) return;
      const parity = (i + j) % 2 ? "roi-odd" : "roi-even";
      const at = [c0 + INSET, r0 + INSET, c1 - c0 - 2 * INSET, r1 - r0 - 2 * INSET];
      parts.push(rect(...at, `class="roi-pool-bin ${parity}" data-row="${i}" data-col="${j}"`));
    });
  });
  const [top, left] = bins.start;
  const [height, width] = bins.size;
  const box = rect(left, top, width, height,
    `class="roi-pool-box" data-testid="roi-pool-box" data-start='${json(bins.start)}' data-end='${json(bins.end)}' data-size='${json(bins.size)}'`);
  const empty = bins.rows.reduce((n, _, i) => n + bins.cols.filter((_, j) => poolBinEmpty(bins, i, j)).length, 0);
  const group =
    `<g class="roi-pool-bins" data-testid="roi-pool-bins" data-rows='${json(bins.rows)}' data-cols='${json(bins.cols)}' ` +
    `data-bin-size='${json(bins.binSize)}' data-empty="${empty}" data-feature-size='${json(featureSize)}'>${parts.join("")}</g>`;
  return { markup: group + box, empty };
}

function alignMarkup(samples, featureSize, radius) {
  // The kernel's coordinate u is drawn at u + 1/2: cell i's value sits at its centre.
  const lines = [];
  const [top, bottom] = [samples.rowEdges[0], samples.rowEdges.at(-1)].map((v) => v + 0.5);
  const [left, right] = [samples.colEdges[0], samples.colEdges.at(-1)].map((v) => v + 0.5);
  for (const e of samples.rowEdges) lines.push(`M${left} ${e + 0.5}H${right}`);
  for (const e of samples.colEdges) lines.push(`M${e + 0.5} ${top}V${bottom}`);
  const [height, width] = featureSize;
  const dots = [];
  let outside = 0;
  samples.ys.forEach((ys, i) => {
    samples.xs.forEach((xs, j) => {
      for (const y of ys) {
        for (const x of xs) {
          const off = !(y >= -1 && y <= height && x >= -1 && x <= width);
          outside += off;
          dots.push(`<circle class="roi-sample${off ? " roi-off-map" : ""}" cx="${x + 0.5}" cy="${y + 0.5}" r="${radius}" data-bin="${i},${j}"/>`);
        }
      }
    });
  });
  const attributes = [
    `data-start='${json(samples.start)}'`, `data-size='${json(samples.size)}'`,
    `data-bin-size='${json(samples.binSize)}'`, `data-grid='${json(samples.grid)}'`,
    `data-count="${samples.count}"`, `data-row-edges='${json(samples.rowEdges)}'`,
    `data-col-edges='${json(samples.colEdges)}'`, `data-ys='${json(samples.ys)}'`, `data-xs='${json(samples.xs)}'`,
  ].join(" ");
  return (
    `<g class="roi-align-bins" data-testid="roi-align-bins" ${attributes}><path class="roi-align-bin" d="${lines.join("")}"/></g>` +
    `<g class="roi-taps" data-testid="roi-taps"></g>` +
    `<g class="roi-samples" data-testid="roi-align-samples" data-count="${dots.length}" data-outside="${outside}">${dots.join("")}</g>`
  );
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "roi-explorer";
  root.dataset.testid = "roi-explorer";
  root.innerHTML = skeleton(model);
  suppressNotebookShortcuts(root); // widget_controls.js, appended to this module
  const colors = model.get("_colors");
  for (const [name, value] of Object.entries(colors)) root.style.setProperty(`--roi-${name}`, String(value));
  el.appendChild(root);

  const find = (testid) => root.querySelector(`[data-testid="${testid}"]`);
  const limits = model.get("_limits");
  const panels = { pool: find("roi-pool-panel"), align: find("roi-align-panel") };
  const drawn = { samples: null, cell: 1, featureSize: null, hover: null };
  let applying = false; // true while this view writes several traits to the model

  const state = () => ({
    box: BOX_SETTINGS.map((name) => model.get(name)),
    featureSize: [...model.get("feature_size")],
    scale: model.get("spatial_scale"),
    output: model.get("output_size"),
    sampling: model.get("sampling_ratio"),
    aligned: model.get("aligned"),
    mode: model.get("mode"),
  });

  function setSlider(name, low, high, value) {
    Object.assign(find(`roi-${name}`), { min: String(low), max: String(high), value: String(value) });
    find(`roi-${name}-value`).textContent = numberText(value);
  }

  function syncControls(s) {
    const [height, width] = s.featureSize;
    const size = [width / s.scale, height / s.scale];
    BOX_SETTINGS.forEach((name, i) => setSlider(name, 0, size[i % 2], s.box[i]));
    setSlider("feature-height", ...limits.feature_size, height);
    setSlider("feature-width", ...limits.feature_size, width);
    setSlider("output", ...limits.output_size, s.output);
    find("roi-scale").value = String(s.scale);
    find("roi-sampling").value = String(s.sampling);
    find("roi-aligned").checked = s.aligned;
    find("roi-mode").value = s.mode;
  }

  function drawPanel(kind, s, cell, content) {
    const [height, width] = s.featureSize;
    const svg = find(`roi-${kind}-drawing`);
    const scene = svg.querySelector(".roi-scene");
    const map = mapMarkup(kind, s.featureSize, s.box, s.scale);
    scene.setAttribute("transform", `scale(${cell}) translate(${MARGIN_CELLS} ${MARGIN_CELLS})`);
    scene.innerHTML = map.below + content + map.exact;
    const [w, h] = [(width + 2 * MARGIN_CELLS) * cell, (height + 2 * MARGIN_CELLS) * cell];
    svg.setAttribute("width", String(w));
    svg.setAttribute("height", String(h));
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    panels[kind].style.width = `${w}px`; // the title wraps at the drawing's width
    return svg;
  }

  function redraw() {
    if (applying) return;
    const started = performance.now();
    const s = state();
    syncControls(s);
    const [height, width] = s.featureSize;
    const outputSize = [s.output, s.output];
    const cell = Math.max(MIN_CELL_PX, Math.min(MAX_CELL_PX, Math.floor(PANEL_PX[s.mode] / (Math.max(height, width) + 2 * MARGIN_CELLS))));
    const bins = poolBins(s.box, outputSize, s.scale, s.featureSize);
    const samples = alignSamples(s.box, outputSize, s.scale, s.sampling, s.aligned);
    const off = misalignment(s.box, outputSize, s.scale, s.aligned);
    const pool = poolMarkup(bins, s.featureSize);
    drawPanel("pool", s, cell, pool.markup);
    const radius = Math.max(SAMPLE_PX[0], Math.min(SAMPLE_PX[1], cell / 10)) / cell;
    drawPanel("align", s, cell, alignMarkup(samples, s.featureSize, radius));
    panels.pool.hidden = s.mode === "align";
    panels.align.hidden = s.mode === "pool";
    Object.assign(drawn, { samples, cell, featureSize: s.featureSize, hover: null });
    showSample(null);

    const px = (cells) => numberText(cells / s.scale);
    const [x1, y1, x2, y2] = s.box;
    const alignedText = `aligned=${s.aligned ? "True" : "False"}`;
    find("roi-pool-title").textContent =
      `RoIPool: cells ${bins.start[0]}..${bins.end[0]} × ${bins.start[1]}..${bins.end[1]}, bins of ` +
      `${numberText(bins.binSize[0])}×${numberText(bins.binSize[1])} cells rounded out`;
    find("roi-align-title").textContent =
      `RoIAlign (${alignedText}): bins of ${numberText(samples.binSize[0])}×${numberText(samples.binSize[1])} cells, ` +
      `${samples.grid[0]}×${samples.grid[1]} samples each`;
    const scaled = s.box.map((v) => numberText(v * s.scale));
    find("roi-readout").textContent =
      `Map ${height}×${width} cells = input ${px(height)}×${px(width)} px (1 cell = ${px(1)} px). ` +
      `Box x ${numberText(x1)}..${numberText(x2)}, y ${numberText(y1)}..${numberText(y2)} px = cells ` +
      `x ${scaled[0]}..${scaled[2]}, y ${scaled[1]}..${scaled[3]} on the map. ` +
      `RoIPool rounds it to cells ${bins.start[1]}..${bins.end[1]} (x) and ${bins.start[0]}..${bins.end[0]} (y), ` +
      `the last ones included, and cuts ${s.output}×${s.output} bins with floor/ceil edges` +
      (pool.empty ? ` (${pool.empty} clipped away: they output 0)` : "") +
      `. RoIAlign samples ${samples.grid[0]}×${samples.grid[1]} points per bin, ${samples.ys.flat().length * samples.xs.flat().length} in all` +
      (s.aligned ? "." : ", half a cell down and right of the box (aligned=False).");
    const m = find("roi-misalignment");
    m.textContent =
      `Bin edges off the exact ones, in input pixels: RoIPool up to ${numberText(off.pool.maxOffset)} px ` +
      `(mean ${numberText(off.pool.meanOffset)} px), RoIAlign (${alignedText}) up to ` +
      `${numberText(off.align.maxOffset)} px (mean ${numberText(off.align.meanOffset)} px).`;
    Object.assign(m.dataset, {
      poolMax: String(off.pool.maxOffset), poolMean: String(off.pool.meanOffset),
      alignMax: String(off.align.maxOffset), alignMean: String(off.align.meanOffset),
      poolBox: json(off.pool.box), alignBox: json(off.align.box),
    });
    Object.assign(root.dataset, {
      box: json(s.box), featureSize: json(s.featureSize), spatialScale: String(s.scale),
      outputSize: String(s.output), samplingRatio: String(s.sampling), aligned: String(s.aligned), mode: s.mode,
    });
    for (const kind of ["pool", "align"]) {
      find(`roi-${kind}-drawing`).setAttribute("aria-label", `${find(`roi-${kind}-title`).textContent}. ${m.textContent}`);
    }
    root.dataset.redrawMs = (performance.now() - started).toFixed(3);
  }

  /** Highlight the taps of one sample point [i, j, y, x] (or none) and describe it. */
  function showSample(sample) {
    const taps = find("roi-taps");
    const text = find("roi-sample");
    if (!sample) {
      taps.innerHTML = "";
      delete taps.dataset.taps;
      text.textContent = "Point at a sample of RoIAlign to see the four cells it interpolates.";
      return;
    }
    const [i, j, y, x] = sample;
    const [height, width] = drawn.featureSize;
    const found = bilinearTaps(y, x, height, width);
    taps.innerHTML = found.map(([r, c, w]) => rect(c, r, 1, 1, `class="roi-tap" fill-opacity="${(0.15 + 0.7 * w).toFixed(3)}"`)).join("");
    taps.dataset.taps = json(found);
    const where = `sample (y ${numberText(y)}, x ${numberText(x)}) of bin (${i}, ${j})`;
    text.textContent = found.length
      ? `${where}: ${found.map(([r, c, w]) => `${numberText(w)}·cell(${r}, ${c})`).join(" + ")}`
      : `${where}: more than a cell outside the map, counts as 0`;
  }

  function onHover(event) {
    if (!drawn.samples) return;
    const svg = find("roi-align-drawing");
    const box = svg.getBoundingClientRect();
    const scale = box.width / Number(svg.getAttribute("width")); // the drawing may be shrunk
    const u = (event.clientX - box.left) / scale / drawn.cell - MARGIN_CELLS - 0.5;
    const v = (event.clientY - box.top) / scale / drawn.cell - MARGIN_CELLS - 0.5;
    let best = null;
    let distance = HOVER_PX / drawn.cell / scale;
    drawn.samples.ys.forEach((ys, i) => {
      drawn.samples.xs.forEach((xs, j) => {
        for (const y of ys) {
          for (const x of xs) {
            const d = Math.hypot(x - u, y - v);
            if (d < distance) [best, distance] = [[i, j, y, x], d];
          }
        }
      });
    });
    const key = best && best.join();
    if (key === drawn.hover) return;
    drawn.hover = key;
    showSample(best);
  }

  /** Write several traits at once (one redraw, one message to the kernel). */
  function apply(changes) {
    applying = true;
    try {
      for (const [name, value] of Object.entries(changes)) model.set(name, value);
    } finally {
      applying = false;
    }
    model.save_changes();
    redraw();
  }

  function boxChanges(box) {
    return Object.fromEntries(BOX_SETTINGS.map((name, i) => [name, box[i]]));
  }

  function onControl(event) {
    const name = event.target.dataset.setting;
    if (!name) return;
    const s = state();
    const value = event.target.value;
    if (BOX_SETTINGS.includes(name)) {
      // A corner dragged past the other one pushes it along.
      const box = [...s.box];
      const i = BOX_SETTINGS.indexOf(name);
      box[i] = Number(value);
      const partner = (i + 2) % 4;
      if (i < 2 ? box[i] > box[partner] : box[i] < box[partner]) box[partner] = box[i];
      apply(boxChanges(box));
    } else if (name === "feature-height" || name === "feature-width") {
      const featureSize = [...s.featureSize];
      featureSize[name === "feature-height" ? 0 : 1] = Number(value);
      apply({ feature_size: featureSize, ...boxChanges(adjustBox(s.box, s.scale, s.scale, featureSize)) });
    } else if (name === "scale") {
      const scale = Number(value);
      apply({ spatial_scale: scale, ...boxChanges(adjustBox(s.box, s.scale, scale, s.featureSize)) });
    } else if (name === "output") {
      apply({ output_size: Number(value) });
    } else if (name === "sampling") {
      apply({ sampling_ratio: Number(value) });
    } else if (name === "aligned") {
      apply({ aligned: event.target.checked });
    } else if (name === "mode") {
      apply({ mode: value });
    }
  }

  for (const row of root.querySelectorAll(".roi-controls")) {
    row.addEventListener("input", onControl);
  }
  const alignSvg = find("roi-align-drawing");
  alignSvg.addEventListener("pointermove", onHover);
  alignSvg.addEventListener("pointerleave", () => {
    drawn.hover = null;
    showSample(null);
  });
  const watched = [...BOX_SETTINGS, "feature_size", "spatial_scale", "output_size", "sampling_ratio", "aligned", "mode"]
    .map((name) => `change:${name}`);
  for (const event of watched) model.on(event, redraw);
  redraw();

  return () => {
    for (const event of watched) model.off(event, redraw);
  };
}

export default { render };
