// Label Studio's app bundle, loaded for its editor only: main.js's modules are registered, its entry
// (the whole Label Studio app, with its own login and API calls) never runs. Runs after runtime.js,
// before main.js; keeps the bundle's module loader for editor.js.
(function () {
  // the feature flags Label Studio's own pages give its editor (from the installed Label Studio, by the server)
  window.APP_SETTINGS = Object.assign({}, window.APP_SETTINGS, {
    feature_flags: JSON.parse(document.body.dataset.featureFlags || '{}'), feature_flags_default_value: false,
  });
  const mainChunk = Number(document.body.dataset.mainChunk);
  const queue = (self.webpackChunklabelstudio = self.webpackChunklabelstudio || []);
  const push = queue.push;
  queue.push = function (data) {
    return push.call(queue, data[0].includes(mainChunk) ? [data[0], data[1]] : data);
  };
  queue.push([['radlabel-editor'], {}, load => { self.radlabelBundleLoader = load; }]);
})();
