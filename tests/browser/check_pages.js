// Opens pages of the built book in headless Chromium and reports, per page, the console
// errors, uncaught exceptions, failed requests and what the page shows.
// usage: node check_pages.js FILE.html [FILE.html ...]   (prints one JSON object)
const { chromium } = require('playwright-core');
const path = require('path');

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu'],
  });
  const report = {};
  for (const file of process.argv.slice(2)) {
    const page = await browser.newPage();
    const r = { console_errors: [], page_errors: [], failed_requests: [] };
    page.on('console', (m) => { if (m.type() === 'error') r.console_errors.push(m.text()); });
    page.on('pageerror', (e) => r.page_errors.push(String(e)));
    page.on('requestfailed', (q) => r.failed_requests.push(q.url()));
    await page.goto('file://' + path.resolve(file), { waitUntil: 'load' });
    await page.waitForTimeout(2500);  // widget managers render after load
    r.images = await page.locator('div.cell_output img').count();
    r.animations = await page.locator('div.animation').count();
    // tables printed by the notebooks (display(Markdown(...))) must render as <table>, not as "| a | b |" text
    r.output_tables = await page.locator('div.cell_output table').count();
    r.raw_pipe_tables = await page.evaluate(() =>
      [...document.querySelectorAll('div.cell_output')].filter((d) => /^\s*\|.*\|\s*$\n^\s*\|[\s:|-]+\|\s*$/m.test(d.innerText)).length);
    // a printed table wider than the page: the reader has to scroll sideways to see its last columns.
    // Two ways it shows: inside a scroll container (the parent's scrollWidth exceeds its width), or
    // spilling over the output's right edge where no container clips it.
    r.wide_tables = await page.evaluate(() => Array.from(document.querySelectorAll('div.cell_output table'))
      .filter((t) => t.offsetParent !== null && (t.parentElement.scrollWidth > t.parentElement.clientWidth + 1
        || t.getBoundingClientRect().right > t.closest('div.cell_output').getBoundingClientRect().right + 1))
      .map((t) => t.querySelector('tr') ? t.querySelector('tr').innerText.replace(/\s+/g, ' ').slice(0, 80) : ''));
    r.widget_scripts = await page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count();
    r.widget_views = await page.locator('.jupyter-widgets, .widget-inline-hbox, .widget-hbox, .widget-vbox').count();
    // legibility of the static page: widget labels cut off, readouts without a value, and the
    // pixel size of each animation frame
    r.cut_labels = await page.evaluate(() => Array.from(document.querySelectorAll('.widget-label'))
      .filter((e) => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent));
    r.empty_readouts = await page.evaluate(() => Array.from(document.querySelectorAll('.widget-readout'))
      .filter((e) => e.offsetParent !== null && !e.textContent.trim()).length);
    r.animation_frames = await page.evaluate(() => Array.from(document.querySelectorAll('div.animation img'))
      .map((i) => [i.naturalWidth, i.naturalHeight]));
    r.external_requests = await page.evaluate(() =>
      performance.getEntriesByType('resource').map((e) => e.name).filter((u) => /^https?:/.test(u)));
    report[file] = r;
    await page.close();
  }
  await browser.close();
  console.log(JSON.stringify(report, null, 1));
})().catch((e) => { console.error(e); process.exit(1); });
