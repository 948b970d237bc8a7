// Receptive-field viewer: an anywidget ES module (segtutor/viz/receptive_widget.py).
//
// Everything runs in the browser, so the viewer stays interactive in the static HTML book.
// The first half of this file is pure arithmetic with no DOM access; it is exported so that
// tests/js/receptive_field.mjs can run it under node and compare it with
// segtutor.arithmetic.receptive_field (itself checked against published values and gradients).
// The second half draws.
//
// Receptive fields follow Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional
// Neural Networks", Distill 2019, https://distill.pub/2019/computing-receptive-fields/.
// A layer is a plain dict from Python's layer_dicts(): {type: "conv" | "pool" |
// "conv_transpose" | "upsample" | "identity", k, s, p, d, output_padding, ceil_mode, factor,
// mode}, every size a pair [height, width]. The colours come from Python (_colors: those of
// segtutor.viz.diagrams, DESIGN.md's conv_arithmetic palette), the same as the static figure's.

// ---------------------------------------------------------------------------------------
// Arithmetic (pure functions; the same recurrences as segtutor.arithmetic.receptive_field)
// ---------------------------------------------------------------------------------------

/** A stack that does not fit its input (the counterpart of Python's ValueError). */
export class StackError extends Error {
  constructor(message) {
    super(message);
    this.name = "StackError";
  }
}

/** floor(a / b) for integers, b > 0, without floating-point rounding. */
export function floorDiv(a, b) {
  const q = Math.trunc(a / b);
  return q * b > a ? q - 1 : q;
}

/** ceil(a / b) for integers, b > 0. */
export function ceilDiv(a, b) {
  return -floorDiv(-a, b);
}

function gcd(a, b) {
  let [x, y] = [Math.abs(a), Math.abs(b)];
  while (y) [x, y] = [y, x % y];
  return x;
}

/** An exact fraction n/d in lowest terms, d > 0 (upsampling makes S, P and r fractional). */
export function fraction(n, d = 1) {
  const sign = d < 0 ? -1 : 1;
  const divisor = gcd(n, d) || 1;
  return { n: (sign * n) / divisor, d: (sign * d) / divisor };
}

const add = (x, y) => fraction(x.n * y.d + y.n * x.d, x.d * y.d);
const mul = (x, y) => fraction(x.n * y.n, x.d * y.d);

/** "3", "1/2" or "-3/4": the way Python prints an int or a Fraction. */
export function fractionText(x) {
  return x.d === 1 ? `${x.n}` : `${x.n}/${x.d}`;
}

/** One axis of one layer: how r, S, P grow, how units map back, the output size. */
function layerAxis(layer, axis) {
  const at = (key) => layer[key][axis];
  switch (layer.type) {
    case "conv":
    case "pool": {
      const [k, s, p, d] = [at("k"), at("s"), at("p"), at("d")];
      const size = layer.type === "pool" ? poolSize(k, s, p, d, layer.ceil_mode) : (i) => floorDiv(i + 2 * p - d * (k - 1) - 1, s) + 1;
      return {
        span: fraction(d * (k - 1)),
        stride: fraction(s),
        padding: fraction(p),
        back: (a, b) => [a * s - p, b * s - p + d * (k - 1)],
        size,
      };
    }
    case "conv_transpose": {
      const [k, s, p, d, extra] = [at("k"), at("s"), at("p"), at("d"), at("output_padding")];
      return {
        span: fraction(d * (k - 1), s),
        stride: fraction(1, s),
        padding: fraction(d * (k - 1) - p, s),
        back: transposeBack(k, s, p, d),
        size: (i) => (i - 1) * s - 2 * p + d * (k - 1) + extra + 1,
      };
    }
    case "upsample": {
      const f = at("factor");
      const bilinear = layer.mode === "bilinear";
      // Bilinear (align_corners=False): output j sits at c = (2j + 1 - f) / 2f and mixes
      // inputs floor(c) and ceil(c). Nearest: output j copies input floor(j / f).
      const back = bilinear
        ? (a, b) => [floorDiv(2 * a + 1 - f, 2 * f), ceilDiv(2 * b + 1 - f, 2 * f)]
        : (a, b) => [floorDiv(a, f), floorDiv(b, f)];
      return {
        span: fraction(bilinear ? 1 : 0),
        stride: fraction(1, f),
        padding: bilinear ? fraction(f - 1, 2 * f) : fraction(0),
        back,
        size: (i) => i * f,
      };
    }
    case "identity":
      return { span: fraction(0), stride: fraction(1), padding: fraction(0), back: (a, b) => [a, b], size: (i) => i };
    default:
      throw new StackError(`unknown layer type ${JSON.stringify(layer.type)}`);
  }
}

/** nn.MaxPool2d's output size; in ceil mode the last window must start inside the input. */
function poolSize(k, s, p, d, ceilMode) {
  return (i) => {
    const span = i + 2 * p - d * (k - 1) - 1;
    let size = (ceilMode ? ceilDiv(span, s) : floorDiv(span, s)) + 1;
    if (ceilMode && (size - 1) * s >= i + p) size -= 1;
    return size;
  };
}

/** Transposed convolution: the first and last input that writes into outputs a..b. */
function transposeBack(k, s, p, d) {
  const writesInto = (u, a, b) => {
    const firstTap = Math.max(0, ceilDiv(a - u * s + p, d));
    return firstTap < k && u * s - p + firstTap * d <= b;
  };
  return (a, b) => {
    let lo = ceilDiv(a + p - d * (k - 1), s);
    let hi = floorDiv(b + p, s);
    while (lo <= hi && !writesInto(lo, a, b)) lo += 1;
    while (hi >= lo && !writesInto(hi, a, b)) hi -= 1;
    return [lo, hi];
  };
}

/**
 * The receptive field of every layer of a stack on an input of [height, width].
 *
 * @returns {{r: object[], S: object[], P: object[], outputSize: number[], chains: Function[][],
 *   upsampled: boolean}[]} per layer and per axis (height, width): size r, effective stride S
 *   and effective padding P as fractions, the output size, the maps back to the input; and
 *   whether an upsampling layer (stride 1/f) came so far, which makes r only an estimate.
 * @throws {StackError} when a layer's output would be empty (the stack does not fit).
 */
export function stackFields(layers, inputSize) {
  const axes = [0, 1].map((axis) => ({ r: fraction(1), S: fraction(1), P: fraction(0), size: inputSize[axis], chain: [] }));
  let upsampled = false;
  return layers.map((layer, index) => {
    for (const [axis, state] of axes.entries()) {
      const step = layerAxis(layer, axis);
      upsampled ||= step.stride.d !== 1;
      state.r = add(state.r, mul(step.span, state.S));
      state.P = add(state.P, mul(step.padding, state.S));
      state.S = mul(state.S, step.stride);
      const size = step.size(state.size);
      if (size < 1) {
        const side = axis === 0 ? "height" : "width";
        throw new StackError(`layer ${index} does not fit its input: an input ${side} of ${state.size} gives an output ${side} of ${size}`);
      }
      state.size = size;
      state.chain = [...state.chain, step.back];
    }
    return {
      r: axes.map((a) => a.r),
      S: axes.map((a) => a.S),
      P: axes.map((a) => a.P),
      outputSize: axes.map((a) => a.size),
      chains: axes.map((a) => a.chain),
      upsampled,
    };
  });
}

/** Input rows and columns [[first, last], [first, last]] that unit (row, col) reads. */
export function region(field, row, col) {
  return [row, col].map((u, axis) => {
    let span = [u, u];
    const chain = field.chains[axis];
    for (let n = chain.length - 1; n >= 0; n--) span = chain[n](...span);
    return span;
  });
}

/** The part of a region on the input (null where it lies wholly in the padding). */
export function clipRegion(area, inputSize) {
  const clipped = area.map(([first, last], axis) => [Math.max(first, 0), Math.min(last, inputSize[axis] - 1)]);
  return clipped.every(([first, last]) => first <= last) ? clipped : null;
}

/** The smallest square input side (up to `limit`) that the stack fits, or null. */
export function minInputSize(layers, limit) {
  for (let side = 1; side <= limit; side++) {
    try {
      stackFields(layers, [side, side]);
      return side;
    } catch (error) {
      if (!(error instanceof StackError)) throw error;
    }
  }
  return null;
}

/** The input rows and columns any unit of any layer reads: [[top, bottom], [left, right]]. */
export function extent(fields, inputSize) {
  const span = [0, 1].map((axis) => [0, inputSize[axis] - 1]);
  for (const field of fields) {
    const [rows, cols] = field.outputSize;
    for (const area of [region(field, 0, 0), region(field, rows - 1, cols - 1)]) {
      area.forEach(([first, last], axis) => {
        span[axis][0] = Math.min(span[axis][0], first);
        span[axis][1] = Math.max(span[axis][1], last);
      });
    }
  }
  return span;
}

/** "10" when both axes agree, else "10×6". */
export function pairText(pair) {
  const [h, w] = pair.map(fractionText);
  return h === w ? h : `${h}×${w}`;
}

// ---------------------------------------------------------------------------------------
// Drawing (SVG) and the anywidget view
// ---------------------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";
const INPUT_PX = 360; // the input panel, padding margin included
const OUTPUT_PX = 240;
const GAP_PX = 28;
const MAX_CELL_PX = 24;
const GRID_LINES_FROM_PX = 5; // draw cell borders only when cells are at least this large
const RING_PX = 8;
// Around the drawing: the ring of a corner unit (radius RING_PX from the cell's centre, plus
// half of its 2 px stroke, receptive_field.css) and the 1 px lines at the edges stay inside.
const MARGIN_PX = RING_PX + 1;

function gridPath(rows, cols, top = 0, left = 0) {
  const lines = [];
  for (let r = 0; r <= rows; r++) lines.push(`M${left} ${top + r}H${left + cols}`);
  for (let c = 0; c <= cols; c++) lines.push(`M${left + c} ${top}V${top + rows}`);
  return lines.join("");
}

function setRect(rect, [[top, bottom], [left, right]]) {
  rect.setAttribute("x", String(left));
  rect.setAttribute("y", String(top));
  rect.setAttribute("width", String(right - left + 1));
  rect.setAttribute("height", String(bottom - top + 1));
}

function legendMarkup(colors) {
  const swatch = (attributes) =>
    `<svg width="14" height="14" aria-hidden="true"><rect x="0.5" y="0.5" width="13" height="13" ${attributes}/></svg>`;
  const entries = [
    [`class="rf-swatch-cell" fill="${colors.input}"`, "input"],
    [`class="rf-swatch-field" fill-opacity="${colors.kernelOpacity}"`, "receptive field on the input"],
    [`class="rf-swatch-padding" fill="none" stroke-dasharray="3 2"`, "part in the zero padding"],
    [`class="rf-swatch-cell" fill="${colors.output}"`, "output of the chosen layer"],
  ];
  return entries.map(([attributes, text]) => `<span>${swatch(attributes)} ${text}</span>`).join("");
}

function slider(name, label) {
  return (
    `<label class="rf-control"><span class="rf-label">${label}</span>` +
    `<input type="range" step="1" data-setting="${name}" data-testid="rf-${name}" aria-label="${label}">` +
    `<output data-testid="rf-${name}-value"></output></label>`
  );
}

function skeleton(colors) {
  return `
    <div class="rf-controls">
      <label class="rf-control"><span class="rf-label">stack</span>
        <select data-setting="preset" data-testid="rf-preset" aria-label="layer stack"></select></label>
      <label class="rf-control"><span class="rf-label">layer</span>
        <select data-setting="layer" data-testid="rf-layer" aria-label="layer whose output is shown"></select></label>
    </div>
    <div class="rf-controls">
      ${slider("input", "input size")}${slider("row", "output row")}${slider("col", "output column")}
    </div>
    <div class="rf-error" data-testid="rf-error" role="alert"></div>
    <svg class="rf-drawing" data-testid="rf-drawing" xmlns="${SVG_NS}" role="img">
      <g class="rf-input-side" data-testid="rf-input-grid">
        <path class="rf-padding" fill="none"/>
        <rect class="rf-input" fill="${colors.input}"/>
        <path class="rf-grid" fill="none"/>
        <rect class="rf-region" data-testid="rf-region" fill-opacity="${colors.kernelOpacity}"/>
        <rect class="rf-region-full" data-testid="rf-region-full" fill="none"/>
      </g>
      <g class="rf-output-side"><g class="rf-output-cells">
        <rect class="rf-output" fill="${colors.output}"/>
        <path class="rf-grid" fill="none"/>
        <rect class="rf-unit" data-testid="rf-unit" width="1" height="1" fill-opacity="${colors.kernelOpacity}"/>
        <circle class="rf-unit-ring" data-testid="rf-unit-ring" fill="none"/>
        <rect class="rf-hit" data-testid="rf-output-grid" fill="transparent"/>
      </g></g>
    </svg>
    <!-- Below the drawing: text that changes length on hover must not move the grid. -->
    <div class="rf-readout" data-testid="rf-readout" aria-live="polite"></div>
    <div class="rf-numbers">r = <span data-testid="rf-r"></span>, S = <span data-testid="rf-S"></span>,
      P = <span data-testid="rf-P"></span><span class="rf-note" data-testid="rf-note"></span></div>
    <div class="rf-legend">${legendMarkup(colors)}</div>`;
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "receptive-field-viewer";
  root.dataset.testid = "receptive-field-viewer";
  const colors = model.get("_colors");
  root.innerHTML = skeleton(colors);
  // The kernel's and the padding's colours are receptive_field.css's fallbacks for the
  // theme's (--jp-*) colours: lines and marks follow JupyterLab's theme where there is one.
  for (const name of ["kernel", "padding"]) root.style.setProperty(`--rf-${name}`, String(colors[name]));
  suppressNotebookShortcuts(root); // widget_controls.js, appended to this module
  el.appendChild(root);

  const find = (testid) => root.querySelector(`[data-testid="${testid}"]`);
  const svg = find("rf-drawing");
  const inputSide = find("rf-input-grid");
  const outputSide = root.querySelector(".rf-output-side");
  const outputCells = root.querySelector(".rf-output-cells");
  const hit = find("rf-output-grid");
  const controls = { preset: find("rf-preset"), layer: find("rf-layer"), input: find("rf-input"), row: find("rf-row"), col: find("rf-col") };
  // What is drawn now; a model change redraws only the parts that changed.
  const drawn = { stackKey: null, layer: null, entry: null, fields: null, hover: null, inputSize: null };
  let applying = false; // true while this view writes several traits to the model

  const entryNamed = (name) => model.get("_presets").find((entry) => entry.name === name);

  function setSlider(name, low, high, value) {
    Object.assign(controls[name], { min: String(low), max: String(high), value: String(value) });
    find(`rf-${name}-value`).textContent = String(value);
  }

  function drawStack(entry, side) {
    const fields = stackFields(entry.layers, [side, side]);
    const [[top, bottom], [left, right]] = extent(fields, [side, side]);
    const cell = Math.min(MAX_CELL_PX, INPUT_PX / Math.max(bottom - top + 1, right - left + 1));
    inputSide.setAttribute("transform", `scale(${cell}) translate(${-left} ${-top})`);
    inputSide.dataset.rows = inputSide.dataset.cols = String(side);
    const fine = cell >= GRID_LINES_FROM_PX;
    // The zero padding that some unit reads: a dashed grid (just its outline when cells are tiny).
    const [height, width] = [bottom - top + 1, right - left + 1];
    const outline = `M${left} ${top}h${width}v${height}h${-width}Z`;
    inputSide.querySelector(".rf-padding").setAttribute("d", fine ? gridPath(height, width, top, left) : outline);
    setRect(inputSide.querySelector(".rf-input"), [[0, side - 1], [0, side - 1]]);
    inputSide.querySelector(".rf-grid").setAttribute("d", fine ? gridPath(side, side) : "");
    outputSide.setAttribute("transform", `translate(${(right - left + 1) * cell + GAP_PX} 0)`);
    controls.preset.value = entry.name;
    controls.layer.replaceChildren(...entry.labels.map((label, n) => new Option(`${n}: ${label}`, String(n))));
    const low = minInputSize(entry.layers, model.get("_max_input_size"));
    const high = Math.min(model.get("_max_input_size"), Math.max(32, 2 * entry.input_size, side));
    setSlider("input", low, high, side);
    root.dataset.stack = JSON.stringify(entry.layers);
    Object.assign(drawn, { entry, fields, inputSize: [side, side], inputWidth: (right - left + 1) * cell, inputHeight: (bottom - top + 1) * cell });
  }

  function drawLayer(index) {
    const [rows, cols] = drawn.fields[index].outputSize;
    const cell = Math.min(MAX_CELL_PX, OUTPUT_PX / Math.max(rows, cols));
    outputCells.setAttribute("transform", `scale(${cell})`);
    for (const rect of [outputCells.querySelector(".rf-output"), hit]) setRect(rect, [[0, rows - 1], [0, cols - 1]]);
    const fine = cell >= GRID_LINES_FROM_PX;
    outputCells.querySelector(".rf-grid").setAttribute("d", fine ? gridPath(rows, cols) : "");
    // One cell of a large grid is too small to see: ring it (a radius of RING_PX pixels).
    outputCells.querySelector(".rf-unit-ring").setAttribute("r", fine ? "0" : String(RING_PX / cell));
    hit.dataset.rows = String(rows);
    hit.dataset.cols = String(cols);
    controls.layer.value = String(index);
    const width = drawn.inputWidth + GAP_PX + cols * cell + 2 * MARGIN_PX;
    const height = Math.max(drawn.inputHeight, rows * cell) + 2 * MARGIN_PX;
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("viewBox", `${-MARGIN_PX} ${-MARGIN_PX} ${width} ${height}`);
  }

  function showUnit(index, [row, col]) {
    const field = drawn.fields[index];
    const [rows, cols] = field.outputSize;
    setSlider("row", 0, rows - 1, model.get("unit")[0]);
    setSlider("col", 0, cols - 1, model.get("unit")[1]);
    const area = region(field, row, col);
    const clipped = clipRegion(area, drawn.inputSize);
    const full = find("rf-region-full");
    setRect(full, area);
    const [[top, bottom], [left, right]] = area;
    const inPadding = top < 0 || left < 0 || bottom >= drawn.inputSize[0] || right >= drawn.inputSize[1];
    full.classList.toggle("rf-in-padding", inPadding);
    Object.assign(full.dataset, { firstRow: top, lastRow: bottom, firstCol: left, lastCol: right });
    const shown = find("rf-region");
    shown.style.display = clipped ? "" : "none";
    if (clipped) setRect(shown, clipped);
    const unitRect = find("rf-unit");
    unitRect.setAttribute("x", String(col));
    unitRect.setAttribute("y", String(row));
    Object.assign(unitRect.dataset, { row, col });
    const ring = outputCells.querySelector(".rf-unit-ring");
    ring.setAttribute("cx", String(col + 0.5));
    ring.setAttribute("cy", String(row + 0.5));
    const label = drawn.entry.labels[index];
    const unitText = `layer ${index} (${label}), output ${rows}×${cols}: unit (${row}, ${col})`;
    let readText = `reads input rows ${top}..${bottom}, columns ${left}..${right}`;
    if (top > bottom || left > right) {
      readText = "reads no input pixel (only zeros a transposed convolution inserted or added)";
    } else if (inPadding) {
      readText += clipped
        ? `; on the input: rows ${clipped[0][0]}..${clipped[0][1]}, columns ${clipped[1][0]}..${clipped[1][1]}, the rest is zero padding`
        : "; all of it is zero padding";
    }
    find("rf-readout").textContent = `${unitText} ${readText}`;
    find("rf-r").textContent = pairText(field.r);
    find("rf-S").textContent = pairText(field.S);
    find("rf-P").textContent = pairText(field.P);
    find("rf-note").textContent = field.upsampled
      ? " (after upsampling r is the recurrence's estimate; the highlighted region is exact)"
      : "";
    svg.setAttribute("aria-label", find("rf-readout").textContent);
  }

  function redraw() {
    if (applying) return;
    const started = performance.now();
    const preset = model.get("preset");
    const side = model.get("input_size");
    const layer = model.get("layer");
    try {
      const stackKey = JSON.stringify([preset, side]);
      if (stackKey !== drawn.stackKey) {
        drawStack(entryNamed(preset), side);
        drawn.stackKey = stackKey;
        drawn.layer = null;
      }
      if (layer !== drawn.layer) {
        drawLayer(layer);
        drawn.layer = layer;
        drawn.hover = null;
      }
      showUnit(layer, drawn.hover ?? model.get("unit"));
      find("rf-error").textContent = "";
      root.classList.remove("rf-invalid");
    } catch (error) {
      if (!(error instanceof StackError)) throw error;
      find("rf-error").textContent = `Cannot draw: ${error.message}`;
      root.classList.add("rf-invalid");
      drawn.stackKey = null;
    }
    root.dataset.redrawMs = (performance.now() - started).toFixed(3);
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

  const centre = (field) => field.outputSize.map((n) => Math.floor(n / 2));

  function onControl(event) {
    const name = event.target.dataset.setting;
    if (!name) return;
    const value = event.target.value;
    if (name === "preset") {
      const entry = entryNamed(value);
      const fields = stackFields(entry.layers, [entry.input_size, entry.input_size]);
      apply({ preset: value, input_size: entry.input_size, layer: fields.length - 1, unit: centre(fields.at(-1)) });
    } else if (name === "input") {
      const side = Number(value);
      const layer = model.get("layer");
      apply({ input_size: side, unit: centre(stackFields(drawn.entry.layers, [side, side])[layer]) });
    } else if (name === "layer") {
      apply({ layer: Number(value), unit: centre(drawn.fields[Number(value)]) });
    } else {
      const unit = [...model.get("unit")];
      unit[name === "row" ? 0 : 1] = Number(value);
      apply({ unit });
    }
  }

  /** The output cell under the pointer, or null. */
  function cellAt(event) {
    const box = hit.getBoundingClientRect();
    const rows = Number(hit.dataset.rows);
    const cols = Number(hit.dataset.cols);
    const row = Math.floor(((event.clientY - box.top) / box.height) * rows);
    const col = Math.floor(((event.clientX - box.left) / box.width) * cols);
    return row >= 0 && row < rows && col >= 0 && col < cols ? [row, col] : null;
  }

  function onHover(event) {
    const cell = cellAt(event);
    if (!cell || (drawn.hover && drawn.hover[0] === cell[0] && drawn.hover[1] === cell[1])) return;
    drawn.hover = cell;
    redraw();
  }

  function onLeave() {
    drawn.hover = null;
    redraw();
  }

  function onClick(event) {
    // Keep the cell the pointer highlights: a click's coordinates are whole pixels, a
    // pointer move's are not, and a cell of a large grid can be narrower than two pixels.
    const cell = drawn.hover ?? cellAt(event);
    if (cell) apply({ unit: cell });
  }

  for (const row of root.querySelectorAll(".rf-controls")) row.addEventListener("input", onControl);
  hit.addEventListener("pointermove", onHover);
  hit.addEventListener("pointerleave", onLeave);
  hit.addEventListener("click", onClick);

  controls.preset.replaceChildren(...model.get("_presets").map((entry) => new Option(entry.name, entry.name)));
  const watched = ["preset", "input_size", "layer", "unit"].map((name) => `change:${name}`);
  for (const event of watched) model.on(event, redraw);
  redraw();

  return () => {
    for (const event of watched) model.off(event, redraw);
  };
}

export default { render };
