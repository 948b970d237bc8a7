// Part of the offline site (book/_ext/segtutor_offline.py); loaded after require.js and
// before the widget manager (embed-amd.js). It makes RequireJS load the module "anywidget"
// from this site's copy, and the widget manager its icon fonts, instead of from a CDN. The
// folder is read from this script's own URL, so it works from a page at any depth.
(function () {
  "use strict";
  var folder = document.currentScript.src.replace(/[^/]*$/, "");
  window.requirejs.config({
    paths: {
      anywidget: folder + "anywidget/index",
      // embed-amd.js defines this module itself; the path only sets its module.uri, from
      // which the widget manager computes the URLs of its icon fonts (copied there).
      "@jupyter-widgets/html-manager/dist": folder + "html-manager",
    },
  });
  window.__jupyter_widgets_assets_path__ = folder + "html-manager/";
})();
