// Runs the receptive-field viewer's browser-side arithmetic under node for
// tests/test_receptive_widget.py.
//
// Usage: node tests/js/receptive_field.mjs PATH/TO/receptive_field.js < cases.json
// stdin: a JSON list of {layers (layer_dicts() dicts), input_size: [h, w], limit}.
// stdout: a JSON list, one entry per case, in order: {"layers": [per layer {"r", "S", "P"
//   (each [height, width] as text such as "7" or "1/2"), "outputSize": [h, w], "regions":
//   [[[r0, r1], [c0, c1]] for every output unit, row-major], "clipped": [same, clipped to the
//   input, or null]}], "minInputSize": smallest square side up to limit} when the stack fits,
//   {"error": "message", "minInputSize"} when it does not.
// The module is imported from a data: URL so that node treats it as an ES module whatever
// package.json says; its DOM code only runs inside render(), which is never called here.
import { readFileSync } from "node:fs";

const [modulePath] = process.argv.slice(2);
if (!modulePath) {
  console.error("usage: node receptive_field.mjs PATH/TO/receptive_field.js < cases.json");
  process.exit(2);
}
const source = readFileSync(modulePath, "utf8");
const viewer = await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);

function describe(field, inputSize) {
  const [rows, cols] = field.outputSize;
  const regions = [];
  const clipped = [];
  for (let row = 0; row < rows; row++) {
    for (let col = 0; col < cols; col++) {
      const area = viewer.region(field, row, col);
      regions.push(area);
      clipped.push(viewer.clipRegion(area, inputSize));
    }
  }
  const text = (pair) => pair.map(viewer.fractionText);
  return { r: text(field.r), S: text(field.S), P: text(field.P), outputSize: field.outputSize, regions, clipped };
}

const cases = JSON.parse(readFileSync(0, "utf8"));
const results = cases.map(({ layers, input_size: inputSize, limit }) => {
  const minInputSize = viewer.minInputSize(layers, limit);
  try {
    const fields = viewer.stackFields(layers, inputSize);
    return { layers: fields.map((field) => describe(field, inputSize)), minInputSize };
  } catch (error) {
    if (!(error instanceof viewer.StackError)) throw error;
    return { error: error.message, minInputSize };
  }
});
process.stdout.write(JSON.stringify(results));
