// Runs the explorer's browser-side arithmetic under node for tests/test_widget_js.py.
//
// Usage: node tests/js/arithmetic.mjs PATH/TO/conv_explorer.js < configs.json
// stdin: a JSON list of {i, k, s, p, d, transposed, output_padding}.
// stdout: a JSON list, one entry per configuration, in order:
//   {"size", "formula", "length" (cells the kernel slides over), "unreadInputs"} for a valid
//   one, {"error": "message"} for an impossible one.
// The module is imported from a data: URL so that node treats it as an ES module whatever
// package.json says; its DOM code only runs inside render(), which is never called here.
import { readFileSync } from "node:fs";

const [modulePath] = process.argv.slice(2);
if (!modulePath) {
  console.error("usage: node arithmetic.mjs PATH/TO/conv_explorer.js < configs.json");
  process.exit(2);
}
const source = readFileSync(modulePath, "utf8");
const explorer = await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);

const configs = JSON.parse(readFileSync(0, "utf8"));
const results = configs.map((config) => {
  const explained = explorer.explain(config);
  if (!explained.ok) return { error: explained.error };
  const { axis } = explained;
  const unreadInputs = explorer.unreadInputs(axis);
  return { size: explained.outputSize, formula: explained.formula, length: axis.length, unreadInputs };
});
process.stdout.write(JSON.stringify(results));
