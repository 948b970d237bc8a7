// Runs the RoI explorer's browser-side arithmetic under node for tests/js/test_roi_widget.py.
//
// Usage: node tests/js/roi_explorer.mjs PATH/TO/roi_explorer.js < cases.json
// stdin: a JSON list of {box: [x1, y1, x2, y2], output: [rows, cols], scale, feature: [h, w],
//   ratio, aligned, map (optional: the feature map, rows of numbers), adjust (optional:
//   {oldScale, newScale, featureSize})}.
// stdout: a JSON list, one entry per case, in order: {"pool" (clipped to the map),
//   "unclipped", "align", "misalignment" (the module's own objects), "empty" (per bin),
//   "taps" (per bin, per sample: [[row, col, weight] x 4] or []), and with a map:
//   "poolValues" (each bin's maximum over the JavaScript's bins, 0 where empty),
//   "alignValues" (the taps' weighted sum over each bin's samples, over the count); with
//   adjust: "adjusted" (the box adjustBox gives)}.
// The module is imported from a data: URL so that node treats it as an ES module whatever
// package.json says; its DOM code only runs inside render(), which is never called here.
import { readFileSync } from "node:fs";

const [modulePath] = process.argv.slice(2);
if (!modulePath) {
  console.error("usage: node roi_explorer.mjs PATH/TO/roi_explorer.js < cases.json");
  process.exit(2);
}
const source = readFileSync(modulePath, "utf8");
const roi = await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);

function describe(c) {
  const pool = roi.poolBins(c.box, c.output, c.scale, c.feature);
  const align = roi.alignSamples(c.box, c.output, c.scale, c.ratio, c.aligned);
  const [height, width] = c.feature;
  const bins = (f) => pool.rows.map((_, i) => pool.cols.map((_, j) => f(i, j)));
  const taps = align.ys.map((ys) => align.xs.map((xs) =>
    ys.flatMap((y) => xs.map((x) => roi.bilinearTaps(y, x, height, width)))));
  const out = {
    pool,
    unclipped: roi.poolBins(c.box, c.output, c.scale, null),
    align,
    misalignment: roi.misalignment(c.box, c.output, c.scale, c.aligned),
    empty: bins((i, j) => roi.poolBinEmpty(pool, i, j)),
    taps,
  };
  if (c.map) {
    out.poolValues = bins((i, j) => {
      if (roi.poolBinEmpty(pool, i, j)) return 0;
      let best = -Infinity;
      const [[r0, r1], [c0, c1]] = [pool.rows[i], pool.cols[j]];
      for (let r = r0; r < r1; r++) for (let k = c0; k < c1; k++) best = Math.max(best, c.map[r][k]);
      return best;
    });
    out.alignValues = taps.map((row) => row.map((samples) => {
      let total = 0;
      for (const sample of samples) for (const [r, k, w] of sample) total += w * c.map[r][k];
      return total / align.count;
    }));
  }
  if (c.adjust) {
    const { oldScale, newScale, featureSize } = c.adjust;
    out.adjusted = roi.adjustBox(c.box, oldScale, newScale, featureSize);
  }
  return out;
}

const cases = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(cases.map(describe)));
