// Convolution-arithmetic explorer: an anywidget ES module.
//
// Everything runs in the browser, so the widget stays interactive in the static HTML book
// (no kernel behind it). The first half of this file is pure arithmetic with no DOM access;
// it is exported so that tests/js/arithmetic.mjs can run it under node and compare it with
// segtutor.arithmetic (which in turn is tested against PyTorch). The second half draws.
//
// Conventions: Dumoulin & Visin, "A guide to convolution arithmetic for deep learning",
// https://arxiv.org/abs/1603.07285, figures https://github.com/vdumoulin/conv_arithmetic (MIT).
// A transposed convolution is drawn as the equivalent stride-1 convolution over the input
// with s - 1 zeros inserted between neighbours, d(k - 1) - p cells of padding on each side
// (a negative amount crops) and output_padding extra cells at the bottom/right.

// The cells' fills (DESIGN.md's conv_arithmetic palette, segtutor.viz.diagrams). The lines,
// the padding and the kernel footprint take conv_explorer.css's --ce-line and --ce-kernel
// instead: they follow JupyterLab's theme (dark lines on white without one).
export const COLORS = {
  input: "#268BD2",
  output: "#2AA198",
  kernelOpacity: 0.4,
};

const SETTING_MEANINGS = {
  i: "input size",
  k: "kernel size",
  s: "stride",
  p: "padding",
  d: "dilation",
  output_padding: "output padding",
};

// ---------------------------------------------------------------------------------------
// Arithmetic (pure functions; the same rules as segtutor.arithmetic and PyTorch)
// ---------------------------------------------------------------------------------------

/** Error thrown for an impossible configuration (the counterpart of Python's ValueError). */
export class ConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = "ConfigError";
  }
}

// The messages are word for word those of segtutor.arithmetic's ValueError/TypeError
// (tests/test_widget_js.py checks that), so the page and Python give the same reasons.
const PYTHON_NAMES = {
  i: "input size i",
  k: "kernel size k",
  s: "stride s",
  p: "padding p",
  d: "dilation d",
  output_padding: "output_padding",
};

function requireInteger(name, value, minimum) {
  const label = PYTHON_NAMES[name];
  if (!Number.isInteger(value)) {
    throw new ConfigError(`${label} must be an int, got ${value} (${typeof value})`);
  }
  if (value < minimum) {
    // the wording of segtutor/_checks.py, which the tests compare word for word
    const kind = minimum === 1 ? "a positive int" : minimum === 0 ? "a non-negative int" : `an int >= ${minimum}`;
    throw new ConfigError(`${label} must be ${kind}, got ${value}`);
  }
}

function checkCommon(i, k, s, p, d) {
  requireInteger("i", i, 1);
  requireInteger("k", k, 1);
  requireInteger("s", s, 1);
  requireInteger("p", p, 0);
  requireInteger("d", d, 1);
}

/** Spatial extent of a dilated kernel: k + (k - 1)(d - 1). */
export function effectiveKernelSize(k, d = 1) {
  return d * (k - 1) + 1;
}

/**
 * Output size of a convolution, floor((i + 2p - d(k - 1) - 1) / s) + 1 (as nn.Conv2d).
 * @throws {ConfigError} for non-positive sizes, negative padding, or a dilated kernel that
 *   does not fit in the padded input.
 */
export function convOutputSize(i, k, s = 1, p = 0, d = 1) {
  checkCommon(i, k, s, p, d);
  const span = effectiveKernelSize(k, d);
  const padded = i + 2 * p;
  if (span > padded) {
    throw new ConfigError(
      `the kernel (k=${k}, d=${d}, effective size ${span}) is larger than the padded ` +
        `input (i + 2p = ${i} + 2*${p} = ${padded}); need i + 2p >= ${span}`,
    );
  }
  return Math.floor((i + 2 * p - span) / s) + 1;
}

/**
 * Output size of a transposed convolution, (i - 1)s - 2p + d(k - 1) + output_padding + 1
 * (as nn.ConvTranspose2d).
 * @throws {ConfigError} for non-positive sizes, negative paddings, output_padding not smaller
 *   than the stride or the dilation, or a result below one cell.
 */
export function convTransposeOutputSize(i, k, s = 1, p = 0, d = 1, outputPadding = 0) {
  checkCommon(i, k, s, p, d);
  requireInteger("output_padding", outputPadding, 0);
  if (outputPadding >= Math.max(s, d)) {
    throw new ConfigError(
      `output_padding=${outputPadding} must be smaller than the stride s=${s} or the ` +
        `dilation d=${d} (PyTorch's rule: output_padding < max(s, d) = ${Math.max(s, d)})`,
    );
  }
  const size = (i - 1) * s - 2 * p + d * (k - 1) + outputPadding + 1;
  if (size <= 0) {
    throw new ConfigError(
      `transposed convolution output size (i-1)s - 2p + d(k-1) + output_padding + 1 = ` +
        `(${i}-1)*${s} - 2*${p} + ${d}*(${k}-1) + ${outputPadding} + 1 = ${size} is not ` +
        `positive; reduce the padding p=${p} or enlarge the input or kernel`,
    );
  }
  return size;
}

/**
 * The output size of the configuration the explorer shows (transposed or not).
 * @param {{i:number,k:number,s:number,p:number,d:number,transposed:boolean,output_padding:number}} c
 */
export function outputSize(c) {
  if (c.transposed) {
    return convTransposeOutputSize(c.i, c.k, c.s, c.p, c.d, c.output_padding);
  }
  if (c.output_padding !== 0) {
    throw new ConfigError(
      `output_padding=${c.output_padding} only applies to a transposed convolution; ` +
        `switch transposed on or set output_padding=0`,
    );
  }
  return convOutputSize(c.i, c.k, c.s, c.p, c.d);
}

/**
 * One axis of the drawing (rows and columns are the same: everything is square).
 *
 * Coordinates `x` count cells of the (zero-inserted) input from 0. The convolution actually
 * runs over `x` in [start, start + length): cells outside [0, extent) there are padding;
 * inside, a transposed convolution has real inputs only at multiples of s (zeros between).
 * A transposed convolution whose padding exceeds d(k - 1) crops its input instead: those
 * cells are still drawn (`first`..`last`), marked "cropped".
 *
 * @returns {{spacing:number, first:number, last:number, start:number, length:number,
 *   extent:number, step:number, taps:number[], outputSize:number, kind:(x:number)=>string}}
 */
export function axisLayout(c) {
  const o = outputSize(c);
  const reach = c.d * (c.k - 1);
  const taps = Array.from({ length: c.k }, (_, t) => t * c.d);
  if (!c.transposed) {
    return makeAxis({ extent: c.i, spacing: 1, start: -c.p, length: c.i + 2 * c.p, step: c.s, taps, o });
  }
  const extent = c.i + (c.i - 1) * (c.s - 1);
  const pad = reach - c.p;
  const length = extent + 2 * pad + c.output_padding;
  return makeAxis({ extent, spacing: c.s, start: -pad, length, step: 1, taps, o });
}

function makeAxis({ extent, spacing, start, length, step, taps, o }) {
  const end = start + length;
  const kind = (x) => {
    if (x < start || x >= end) return "cropped";
    if (x < 0 || x >= extent) return "padding";
    return x % spacing === 0 ? "input" : "zero";
  };
  return {
    spacing,
    first: Math.min(0, start),
    last: Math.max(extent, end) - 1,
    start,
    length,
    extent,
    step,
    taps,
    outputSize: o,
    kind,
  };
}

/** Input coordinates (x) read by output position `r` along one axis. */
export function footprint(axis, r) {
  return axis.taps.map((t) => axis.start + r * axis.step + t);
}

/** Coordinates along one axis that some output position reads. */
export function readCoordinates(axis) {
  const read = new Set();
  for (let r = 0; r < axis.outputSize; r++) footprint(axis, r).forEach((x) => read.add(x));
  return read;
}

/**
 * Input cells (numbered 0..i-1, as in the tensor) that no output position reads: the floor's
 * "odd" case, cells between the taps of a dilated kernel at every position, and cells a
 * transposed convolution crops away.
 */
export function unreadInputs(axis) {
  const read = readCoordinates(axis);
  const unread = [];
  for (let x = 0; x < axis.extent; x += axis.spacing) if (!read.has(x)) unread.push(x / axis.spacing);
  return unread;
}

/**
 * The output-size formula with the numbers plugged in, e.g.
 * "o = ⌊(5 + 2·1 − 3)/2⌋ + 1 = 3". Returns a list of lines.
 */
export function formulaLines(c) {
  const o = outputSize(c);
  if (!c.transposed) {
    const lines = [];
    let kernel = `${c.k}`;
    let symbol = "k";
    if (c.d > 1) {
      const span = effectiveKernelSize(c.k, c.d);
      lines.push(`k̂ = k + (k − 1)(d − 1) = ${c.k} + ${c.k - 1}·${c.d - 1} = ${span}   (dilated kernel)`);
      kernel = `${span}`;
      symbol = "k̂";
    }
    lines.push(
      `o = ⌊(i + 2p − ${symbol})/s⌋ + 1 = ⌊(${c.i} + 2·${c.p} − ${kernel})/${c.s}⌋ + 1 = ${o}`,
    );
    const dropped = (c.i + 2 * c.p - effectiveKernelSize(c.k, c.d)) % c.s;
    if (dropped > 0) {
      lines.push(`the floor drops the last ${dropped} row(s) and column(s) of the padded input`);
    }
    return lines;
  }
  const pad = c.d * (c.k - 1) - c.p;
  const padText = pad >= 0 ? `pads ${pad} on each side` : `crops ${-pad} from each side`;
  return [
    `o = (i − 1)·s − 2p + d(k − 1) + output_padding + 1 = ` +
      `(${c.i} − 1)·${c.s} − 2·${c.p} + ${c.d}·(${c.k} − 1) + ${c.output_padding} + 1 = ${o}`,
    `= a stride-1 convolution over the input with s − 1 = ${c.s - 1} zero(s) between neighbours, ` +
      `d(k − 1) − p = ${signed(pad)} (${padText}) and output_padding = ${c.output_padding} extra at the bottom/right`,
  ];
}

function signed(n) {
  return n < 0 ? `−${-n}` : `${n}`;
}

/**
 * Everything the view needs for one configuration, or the reason it is impossible.
 * @returns {{ok:true, axis:object, outputSize:number, formula:string[]} | {ok:false, error:string}}
 */
export function explain(c) {
  try {
    const axis = axisLayout(c);
    const formula = formulaLines(c);
    const fadedInputs = unreadInputs(axis).filter((j) => axis.kind(j * axis.spacing) === "input");
    if (fadedInputs.length > 0) formula.push("faded input cells are never read by any output position");
    return { ok: true, axis, outputSize: axis.outputSize, formula };
  } catch (error) {
    if (error instanceof ConfigError) return { ok: false, error: error.message };
    throw error;
  }
}

// ---------------------------------------------------------------------------------------
// Drawing (SVG) and the anywidget view
// ---------------------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";
const MAX_WIDTH = 640; // px available for input grid + gap + output grid
const GAP_CELLS = 2;
const PLAY_INTERVAL_MS = 700;
// Slider ranges when Python sends none (it sends segtutor.viz.widgets.LIMITS as _limits).
export const DEFAULT_LIMITS = { i: [1, 10], k: [1, 5], s: [1, 3], p: [0, 5], d: [1, 3], output_padding: [0, 2] };
const NUMERIC_SETTINGS = ["i", "k", "s", "p", "d", "output_padding"];

// The drawing works in cell units: one cell is the unit square, and a single scale() on the
// scene turns cells into pixels. So a change of cell size touches one attribute, and the
// output grid's cells keep their coordinates when the output grows or shrinks: a redraw only
// adds or removes the rows and columns that changed (fast even for thousands of cells).

function cellSizeFor(axis) {
  const cells = axis.last - axis.first + 1 + GAP_CELLS + axis.outputSize;
  return Math.max(6, Math.min(28, Math.floor(MAX_WIDTH / cells)));
}

/** The input side, in cell units from the first drawn cell: dashed grid, blue inputs. */
function inputSideMarkup(axis) {
  const span = axis.last - axis.first + 1;
  const lines = [];
  for (let n = 0; n <= span; n++) lines.push(`M${n} 0V${span}M0 ${n}H${span}`);
  const parts = [`<path class="ce-grid" d="${lines.join("")}" fill="none"/>`];
  const read = readCoordinates(axis);
  for (let y = axis.first; y <= axis.last; y++) {
    for (let x = axis.first; x <= axis.last; x++) {
      const kindX = axis.kind(x);
      const kindY = axis.kind(y);
      const at = `x="${x - axis.first}" y="${y - axis.first}" width="1" height="1"`;
      if (kindX === "cropped" || kindY === "cropped") {
        parts.push(`<rect class="ce-cropped-cell" ${at}/>`);
      } else if (kindX === "input" && kindY === "input") {
        const faded = read.has(x) && read.has(y) ? "" : " ce-unread";
        parts.push(`<rect class="ce-input-cell${faded}" ${at} fill="${COLORS.input}"/>`);
      }
    }
  }
  return parts.join("");
}

function footprintMarkup(axis, row, col) {
  const parts = [];
  for (const y of footprint(axis, row)) {
    for (const x of footprint(axis, col)) {
      parts.push(`<rect x="${x - axis.first}" y="${y - axis.first}" width="1" height="1"/>`);
    }
  }
  return parts.join("");
}

/** Keeps an n×n grid of output cells (unit squares), adding and removing only what changes. */
class OutputGrid {
  constructor(group) {
    this.group = group;
    this.rows = []; // rows[r][c] is the rect of output cell (r, c)
  }

  resize(n) {
    while (this.rows.length > n) this.rows.pop().forEach((cell) => cell.remove());
    const added = document.createDocumentFragment();
    this.rows.forEach((cells, r) => {
      while (cells.length > n) cells.pop().remove();
      while (cells.length < n) cells.push(this.cell(r, cells.length, added));
    });
    while (this.rows.length < n) {
      const r = this.rows.length;
      this.rows.push(Array.from({ length: n }, (_, c) => this.cell(r, c, added)));
    }
    this.group.appendChild(added);
    this.group.dataset.rows = String(n);
    this.group.dataset.cols = String(n);
  }

  cell(row, col, parent) {
    const rect = document.createElementNS(SVG_NS, "rect");
    rect.setAttribute("class", "ce-output-cell");
    rect.setAttribute("x", String(col));
    rect.setAttribute("y", String(row));
    rect.setAttribute("width", "1");
    rect.setAttribute("height", "1");
    rect.setAttribute("fill", COLORS.output);
    rect.dataset.row = String(row);
    rect.dataset.col = String(col);
    parent.appendChild(rect);
    return rect;
  }

  at(row, col) {
    return this.rows[row][col];
  }
}

function legendMarkup() {
  const swatch = (attributes) =>
    `<svg width="14" height="14" aria-hidden="true"><rect x="0.5" y="0.5" width="13" height="13" ${attributes}/></svg>`;
  const entries = [
    [`class="ce-swatch-cell" fill="${COLORS.input}"`, "input"],
    [`class="ce-swatch-padding" fill="none" stroke-dasharray="3 2"`, "padding / inserted zeros"],
    [`class="ce-swatch-kernel" fill-opacity="${COLORS.kernelOpacity}"`, "kernel footprint"],
    [`class="ce-swatch-cell" fill="${COLORS.output}"`, "output"],
  ];
  return entries.map(([attributes, text]) => `<span>${swatch(attributes)} ${text}</span>`).join("");
}

function controlMarkup(name, limits) {
  const [low, high] = limits[name];
  return (
    `<label class="ce-control"><span class="ce-label">${name}</span>` +
    `<input type="range" min="${low}" max="${high}" step="1" data-setting="${name}" ` +
    `data-testid="ce-input-${name}" aria-label="${SETTING_MEANINGS[name]} ${name}">` +
    `<output data-testid="ce-value-${name}"></output></label>`
  );
}

function skeleton(limits) {
  return `
    <div class="ce-controls">
      ${NUMERIC_SETTINGS.map((name) => controlMarkup(name, limits)).join("")}
      <label class="ce-control"><input type="checkbox" data-setting="transposed" data-testid="ce-input-transposed"
        aria-label="transposed convolution"><span class="ce-label">transposed</span></label>
    </div>
    <div class="ce-buttons">
      <button type="button" data-testid="ce-step">step ▶|</button>
      <button type="button" data-testid="ce-play">play ▶</button>
      <span class="ce-position" data-testid="ce-position"></span>
    </div>
    <div class="ce-formula" data-testid="ce-formula"></div>
    <div class="ce-error" data-testid="ce-error" role="alert"></div>
    <svg class="ce-drawing" data-testid="ce-drawing" xmlns="${SVG_NS}" role="img">
      <g class="ce-scene">
        <g class="ce-input-side" data-testid="ce-input-grid"></g>
        <g class="ce-footprint" fill-opacity="${COLORS.kernelOpacity}"></g>
        <g class="ce-output-side">
          <g data-testid="ce-output-grid"></g>
          <rect class="ce-current" width="1" height="1" fill-opacity="${COLORS.kernelOpacity}"/>
        </g>
      </g>
    </svg>
    <div class="ce-legend">${legendMarkup()}</div>`;
}

function readConfig(model) {
  const c = { transposed: Boolean(model.get("transposed")) };
  for (const name of NUMERIC_SETTINGS) c[name] = model.get(name);
  return c;
}

function render({ model, el }) {
  const limits = { ...DEFAULT_LIMITS, ...(model.get("_limits") || {}) };
  const root = document.createElement("div");
  root.className = "conv-explorer";
  root.dataset.testid = "conv-explorer";
  root.innerHTML = skeleton(limits);
  suppressNotebookShortcuts(root); // widget_controls.js, appended to this module
  el.appendChild(root);

  const find = (testid) => root.querySelector(`[data-testid="${testid}"]`);
  const svg = find("ce-drawing");
  const scene = root.querySelector(".ce-scene");
  const inputSide = find("ce-input-grid");
  const outputSide = root.querySelector(".ce-output-side");
  const outputGrid = new OutputGrid(find("ce-output-grid"));
  const footprintGroup = root.querySelector(".ce-footprint");
  const current = root.querySelector(".ce-current");
  const playButton = find("ce-play");
  const state = { explained: null, position: 0, timer: null, currentCell: null };

  function syncControls(c) {
    for (const name of NUMERIC_SETTINGS) {
      find(`ce-input-${name}`).value = String(c[name]);
      find(`ce-value-${name}`).textContent = String(c[name]);
    }
    find("ce-input-transposed").checked = c.transposed;
    // output_padding applies only to a transposed convolution: greyed out and disabled (so it
    // is skipped by the keyboard and exempt from contrast rules, WCAG 1.4.3) while it has no
    // effect, but left enabled when it is not 0, so that the reader can set it back to 0.
    const inactive = !c.transposed && c.output_padding === 0;
    const outputPadding = find("ce-input-output_padding");
    outputPadding.disabled = inactive;
    outputPadding.closest("label").classList.toggle("ce-inactive", inactive);
  }

  function showPosition() {
    const { axis } = state.explained;
    const o = axis.outputSize;
    const row = Math.floor(state.position / o);
    const col = state.position % o;
    footprintGroup.innerHTML = footprintMarkup(axis, row, col);
    current.setAttribute("x", String(col));
    current.setAttribute("y", String(row));
    state.currentCell?.classList.remove("ce-current-cell");
    state.currentCell = outputGrid.at(row, col);
    state.currentCell.classList.add("ce-current-cell");
    find("ce-position").textContent = `output (${row}, ${col}) — position ${state.position + 1} of ${o * o}`;
  }

  function draw(c, axis) {
    const size = cellSizeFor(axis);
    const span = axis.last - axis.first + 1;
    const o = axis.outputSize;
    const top = Math.max(0, Math.floor((span - o) / 2));
    scene.setAttribute("transform", `scale(${size})`);
    svg.classList.toggle("ce-fine", size < 12); // lighter dashes where cells are small
    inputSide.innerHTML = inputSideMarkup(axis);
    outputSide.setAttribute("transform", `translate(${span + GAP_CELLS} ${top})`);
    state.currentCell?.classList.remove("ce-current-cell");
    state.currentCell = null;
    outputGrid.resize(o);
    const width = (span + GAP_CELLS + o) * size + 2;
    const height = Math.max(span, top + o) * size + 2;
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("viewBox", `-1 -1 ${width} ${height}`);
    svg.setAttribute(
      "aria-label",
      `${c.transposed ? "transposed convolution" : "convolution"}: ${c.i}×${c.i} input, ${o}×${o} output`,
    );
    showPosition();
  }

  function clear() {
    inputSide.innerHTML = "";
    footprintGroup.innerHTML = "";
    state.currentCell = null;
    outputGrid.resize(0);
    find("ce-position").textContent = "";
  }

  function redraw() {
    const started = performance.now();
    const c = readConfig(model);
    syncControls(c);
    const explained = explain(c);
    state.explained = explained.ok ? explained : null;
    state.position = 0;
    find("ce-error").textContent = explained.ok ? "" : `Impossible: ${explained.error}`;
    find("ce-formula").textContent = explained.ok ? explained.formula.join("\n") : "";
    root.classList.toggle("ce-invalid", !explained.ok);
    if (explained.ok) draw(c, explained.axis);
    else clear();
    publish(explained);
    root.dataset.redrawMs = (performance.now() - started).toFixed(3);
  }

  function publish(explained) {
    const size = explained.ok ? explained.outputSize : 0;
    const error = explained.ok ? "" : explained.error;
    if (model.get("output_size") !== size || model.get("error") !== error) {
      model.set("output_size", size);
      model.set("error", error);
      model.save_changes();
    }
  }

  function step() {
    if (!state.explained) return;
    const o = state.explained.outputSize;
    state.position = (state.position + 1) % (o * o);
    showPosition();
  }

  function setPlaying(playing) {
    if (playing && !state.timer) {
      state.timer = setInterval(step, PLAY_INTERVAL_MS);
    } else if (!playing && state.timer) {
      clearInterval(state.timer);
      state.timer = null;
    }
    playButton.textContent = playing ? "pause ❚❚" : "play ▶";
    playButton.setAttribute("aria-pressed", String(playing));
  }

  function onControl(event) {
    const name = event.target.dataset.setting;
    if (!name) return;
    const value = name === "transposed" ? event.target.checked : Number(event.target.value);
    model.set(name, value);
    model.save_changes();
  }

  root.querySelector(".ce-controls").addEventListener("input", onControl);
  find("ce-step").addEventListener("click", step);
  playButton.addEventListener("click", () => setPlaying(!state.timer));
  const watched = [...NUMERIC_SETTINGS, "transposed"].map((name) => `change:${name}`);
  for (const event of watched) model.on(event, redraw);
  redraw();

  return () => {
    setPlaying(false);
    for (const event of watched) model.off(event, redraw);
  };
}

export default { render };
