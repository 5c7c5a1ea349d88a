// In a running JupyterLab (URL with token as argv[2]), opens the interactive sampling
// notebook, runs it, moves a slider of the sampler panel, presses Draw, and checks that
// the plot changed.  Prints a JSON report; exits non-zero on failure.
const { chromium } = require('playwright-core');

(async () => {
  const url = process.argv[2];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => window.jupyterapp !== undefined, null, { timeout: 120000 });
  await page.waitForSelector('.jp-Notebook', { timeout: 120000 });
  await page.waitForTimeout(3000);
  // on a busy machine the kernel starts slowly: run the cells only once it is idle
  await page.waitForFunction(() => {
    const w = window.jupyterapp.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return k && k.status === 'idle';
  }, null, { timeout: 300000 });
  // run all cells
  await page.evaluate(() => window.jupyterapp.commands.execute('notebook:run-all-cells'));
  // the sampler panel: its "Draw" button appears once the models are ready
  const draw = page.locator('button.jupyter-button:has-text("Draw")').first();
  await draw.waitFor({ timeout: 900000 });
  const panel = page.locator('.widget-hbox', { has: draw }).first();
  const plot = panel.locator('img').first();
  await plot.waitFor({ timeout: 300000 });
  const before = await plot.getAttribute('src');
  // move the "input steps" slider two steps to the right with the keyboard
  const slider = panel.locator('.widget-slider', { hasText: 'input steps' }).locator('.noUi-handle').first();
  await slider.focus();
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowRight');
  const readout = await panel.locator('.widget-slider', { hasText: 'input steps' }).locator('.widget-readout').first().textContent();
  await draw.click();
  let after = before;
  for (let i = 0; i < 240 && after === before; i++) {
    await page.waitForTimeout(500);
    const img = panel.locator('img').first();
    if (await img.count()) after = await img.getAttribute('src');
  }
  const report = { slider_readout: readout, plot_changed: after !== before, page_errors: errors };
  console.log(JSON.stringify(report));
  await browser.close();
  process.exit(report.plot_changed ? 0 : 1);
})().catch((e) => { console.error(String(e)); process.exit(1); });
