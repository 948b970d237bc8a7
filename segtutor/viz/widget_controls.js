// Shared by the package's anywidgets (conv_explorer.js, receptive_field.js, roi_explorer.js):
// segtutor.viz._frontend.widget_module() appends this file to each widget's ES module, so one
// copy serves all three (an anywidget module is loaded from a blob and cannot import a file).

/**
 * Let the arrow keys (and every other key) reach the widget's own controls in JupyterLab.
 *
 * In command mode JupyterLab binds ArrowUp/ArrowDown to notebook:move-cursor-up/down with the
 * selector ".jp-Notebook.jp-mod-commandMode:not(.jp-mod-readWrite) :focus", which matches a
 * focused <input type=range> in an output, so the key moves the notebook's cursor instead of
 * the slider. Lumino skips its shortcuts for a key whose target carries the attribute
 * data-lm-suppress-shortcuts; it must be on the control itself (on the widget's root it does
 * not help). Call once the controls exist; elsewhere (the static page, Colab) it changes nothing.
 */
function suppressNotebookShortcuts(root) {
  for (const control of root.querySelectorAll("input, select, textarea")) {
    control.setAttribute("data-lm-suppress-shortcuts", "true");
  }
}
