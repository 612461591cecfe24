"""Real Matrix clients (matrix-js-sdk under Node, Hydrogen in headless Chromium) driven
against the real server process. Their npm packages are pinned in package.json and
package-lock.json here and installed by ``make install`` (``npm ci``)."""
