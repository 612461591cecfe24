// The Hydrogen web app, as hydrogen-web's own entry point (src/platform/web/main.js)
// starts it: a Platform, URL navigation and the RootViewModel/RootView, which show the
// login screen, the session picker, the room list and rooms. Built with esbuild by
// build.mjs; the page is served by tests/clients/test_hydrogen.py.
import {
  FeatureSet, Platform, RootViewModel, createNavigation, createRouter,
} from "hydrogen-view-sdk";

const assetPaths = {
  downloadSandbox: "assets/download-sandbox.html",
  worker: "assets/main.js",
  olm: {
    wasm: "olm/olm.wasm",
    legacyBundle: "olm/olm_legacy.js",
    wasmBundle: "olm/olm.js",
  },
  // Hydrogen keeps the session's access token in its service worker (authenticated
  // media, MSC3916) and cannot log in without it.
  serviceWorker: "sw.js",
};

async function main() {
  const container = document.getElementById("app");
  // No default homeserver: the user types the server's URL on the login screen.
  const config = { defaultHomeServer: "", bugReportEndpointUrl: null, themeManifests: [] };
  const platform = new Platform({ container, assetPaths, config, options: { development: true } });
  await platform.init();
  const features = await FeatureSet.load(platform.settingsStorage);
  const navigation = createNavigation();
  platform.setNavigation(navigation);
  const urlRouter = createRouter({ navigation, history: platform.history });
  urlRouter.attach();
  const vm = new RootViewModel({ platform, urlRouter, navigation, features });
  await vm.load();
  platform.createAndMountRootView(vm);
  window.__hydrogenStarted = true;
}

main().catch((err) => {
  window.__hydrogenStartError = String(err && err.stack || err);
  console.error("hydrogen failed to start", err);
});
