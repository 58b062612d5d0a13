// The editor end to end in headless Chromium, driven by playwright-core:
//
//   NODE_PATH=DIR/node_modules node tests/browser/editor.cjs http://127.0.0.1:PORT/ SCREENSHOT.png
//
// A writer creates a project, types, runs `continue`, accepts a candidate, undoes it,
// reloads and finds the text intact, types Chinese through an IME composition, proofreads and
// applies a fix, shows a candidate token by token and branches from a token's alternative,
// walks the generation tree by keyboard, then starts continuing a long chapter, sees how much of it has been read and
// stops; then builds the book in the binder (braindump, a generated synopsis that goes stale,
// a locked beat kept through regeneration, a chapter marked done and summarized), learns the
// writer's voice from their pages, and reads the context viewer and a suggestion's voice
// ranking. Exits non-zero with the step that failed.
'use strict';

const { chromium } = require('playwright-core');

const [url, screenshot] = process.argv.slice(2);
const chromiumPath = process.env.INKLING_CHROMIUM || '/usr/bin/chromium';

function check(cond, what) {
  if (!cond) throw new Error(`FAILED: ${what}`);
  console.log(`ok   ${what}`);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const text = page.locator('#text');
  const saved = () => page.waitForFunction(() => document.getElementById('save-status').textContent === 'Saved', null, { timeout: 15000 });
  try {
    await page.goto(url);
    await page.waitForFunction(() => document.querySelectorAll('#tool option').length > 10);
    check(true, 'the editor loads with its tools');

    await page.fill('#project-name', 'Lighthouse');
    await page.click('#create-project');
    await page.waitForFunction(() => document.getElementById('project').value === 'Lighthouse');
    await page.fill('#doc-title', 'Chapter 1');
    await page.click('#create-doc');
    await page.waitForFunction(() => !document.getElementById('text').disabled);
    check(true, 'a project and a document are created');

    const typed = 'The lamp went out at midnight. Mara climbed the stairs';
    await text.click();
    await page.keyboard.type(typed, { delay: 5 });
    await saved();
    check((await text.inputValue()) === typed, 'typing is saved');

    await page.selectOption('#tool', 'continue');
    await page.fill('#n', '2');
    await text.evaluate((t) => t.setSelectionRange(t.value.length, t.value.length));
    await page.click('#run');
    await page.waitForSelector('.candidate .accept', { timeout: 180000 });
    const cards = await page.locator('#candidates .candidate').count();
    check(cards >= 1, `continue streams candidates side by side (${cards})`);
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });

    await page.locator('.candidate .accept').first().click();
    await page.waitForFunction((t) => document.getElementById('text').value.length > t.length, typed);
    const withSuggestion = await text.inputValue();
    check(withSuggestion.startsWith(typed), 'the accepted candidate is inserted after the typed text');
    await page.waitForFunction(() => /AI-assisted [1-9]/.test(document.getElementById('share').textContent));
    check(true, `the AI-assisted share shows (${await page.textContent('#share')})`);

    check((await page.textContent('#message')) === '', 'no error is shown');
    await page.waitForFunction(() => document.querySelectorAll('#tree [role=treeitem]').length >= 2 && document.getElementById('tree').textContent.includes('accepted'));
    check(true, 'the generation tree lists the run, the accepted one marked');

    await page.click('#undo');
    await page.waitForFunction((t) => document.getElementById('text').value === t, typed);
    check(true, 'undo takes the suggestion back');
    await page.click('#redo');
    await page.waitForFunction((t) => document.getElementById('text').value === t, withSuggestion);
    check(true, 'redo brings it back');
    await page.click('#undo');
    await page.waitForFunction((t) => document.getElementById('text').value === t, typed);

    await page.reload();
    await page.waitForFunction((t) => document.getElementById('text').value === t, typed, { timeout: 15000 });
    check(true, 'after a reload the text is intact');

    // Chinese through an input method: composition first, then the committed text.
    await text.click();
    await text.evaluate((t) => t.setSelectionRange(t.value.length, t.value.length));
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Input.imeSetComposition', { text: 'ta', selectionStart: 2, selectionEnd: 2 });
    await cdp.send('Input.imeSetComposition', { text: 'taxiao', selectionStart: 6, selectionEnd: 6 });
    await cdp.send('Input.insertText', { text: '。她笑了' });
    await saved();
    await page.reload();
    await page.waitForFunction(() => document.getElementById('text').value.endsWith('。她笑了'), null, { timeout: 15000 });
    const afterIme = await text.inputValue();
    check(!afterIme.includes('taxiao'), 'IME input is saved as the committed Chinese text, never the composition');

    await text.click();
    await text.evaluate((t) => t.setSelectionRange(t.value.length, t.value.length));
    await page.keyboard.type(' We went to the libary.', { delay: 5 });
    await saved();
    await page.click('#proofread');
    const fix = page.locator('.findings .fix', { hasText: 'library' }).first();
    await fix.waitFor({ timeout: 30000 });
    check((await page.locator('#marks mark').count()) >= 1, 'proofread underlines its findings');
    await fix.click();
    await page.waitForFunction(() => document.getElementById('text').value.includes('the library.'));
    await saved();
    await page.reload();
    await page.waitForFunction(() => document.getElementById('text').value.includes('the library.'), null, { timeout: 15000 });
    check(true, 'a one-click fix is applied and saved');

    // Every token's alternatives: show a candidate token by token, hover a token, see what
    // else could have come there, pick one; the rest is written again as a branch under the
    // old candidate, both are in the tree, the keys walk it, and a reload keeps them.
    await page.fill('#n', '1');
    await text.evaluate((t) => t.setSelectionRange(t.value.length, t.value.length));
    await page.click('#run');
    await page.waitForSelector('#candidates .candidate .show-tokens', { timeout: 180000 });
    await page.locator('#candidates .candidate .show-tokens').first().click();
    const token = page.locator('#candidates .tok').nth(2);
    const prefix = await page.evaluate(() => [...document.querySelectorAll('#candidates .tok')].slice(0, 2).map((t) => t.textContent).join(''));
    await token.hover();
    await page.waitForSelector('#token-popup:not([hidden]) .alt');
    await page.check('#alt-before');
    const alternatives = await page.locator('#token-popup .alt').count();
    check(alternatives === 10, `hovering a token shows its ${alternatives} likeliest alternatives, before the samplers on a toggle`);
    const before = await page.textContent('#token-popup');
    check(/\d+\.\d%/.test(before), 'each with its probability');
    if (screenshot) await page.screenshot({ path: screenshot.replace(/\.png$/, '-tokens.png'), fullPage: true });
    const parentId = Number(await page.getAttribute('#candidates .candidate', 'data-gen'));
    const pick = page.locator('#token-popup .alt:not([disabled])').first();
    const picked = (await pick.locator('span').first().textContent()).replace('␣', ' ').replace(/⏎/g, '\n');
    await pick.click();
    await page.waitForFunction(() => /^Branch at/.test(document.querySelector('#candidates .candidate .meta')?.textContent || '') && document.querySelector('#candidates .candidate .accept'), null, { timeout: 180000 });
    const branchText = await page.textContent('#candidates .candidate .body');
    check(branchText.trimStart().startsWith((prefix + picked).trimStart()) && branchText.length > (prefix + picked).length, `choosing "${picked}" writes the rest again as a branch (${JSON.stringify(branchText.slice(0, 60))}…)`);
    const nested = () => page.waitForFunction((p) => {
      const li = document.getElementById(`node-${p}`);
      return li && li.querySelector('[role=group] [role=treeitem]');
    }, parentId, { timeout: 15000 });
    await nested();
    const childId = await page.evaluate((p) => Number(document.getElementById(`node-${p}`).querySelector('[role=group] [role=treeitem]').dataset.id), parentId);
    check(childId !== parentId, `both branches are in the tree, the new one under the old (#${childId} under #${parentId})`);
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('#tree [role=treeitem]').length >= 3);
    await nested();
    check(true, 'a reload keeps both branches');
    await page.locator(`#node-${childId} > .label`).click();
    await page.waitForFunction((c) => document.getElementById(`node-${c}`).getAttribute('aria-selected') === 'true' && document.querySelector('#tree-node .show-tokens'), childId);
    await page.focus('#tree');
    await page.keyboard.press('ArrowLeft');
    await page.waitForFunction((p) => document.getElementById(`node-${p}`).getAttribute('aria-selected') === 'true', parentId);
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction((c) => document.getElementById(`node-${c}`).getAttribute('aria-selected') === 'true', childId);
    check(true, 'the arrow keys walk the tree: ← to the parent, → to its branch');
    await page.locator('#tree-node .show-tokens').click();
    await page.locator('#tree-node .tok').first().hover();
    await page.waitForSelector('#token-popup:not([hidden]) .alt');
    check(true, "after a reload a branch's tokens still show their alternatives");
    await page.keyboard.press('Escape');
    const beforeAccept = await text.inputValue();
    await page.focus('#tree');
    await page.keyboard.press('Enter');
    await page.waitForFunction((t) => document.getElementById('text').value !== t, beforeAccept);
    await saved();
    check((await text.inputValue()).length > beforeAccept.length, 'Enter in the tree accepts the selected branch into the document');

    // Banned phrases: the side panel shows inkling's list, keeps the project's own phrases
    // and patterns, and they are there after a reload.
    await page.click('#bans-panel summary');
    await page.waitForFunction(() => /^\d+: .*Elara/.test(document.getElementById('bans-builtin-count').textContent));
    await page.fill('#bans-phrases', 'suddenly\nall of a sudden');
    await page.fill('#bans-regex', '\\bvery \\w+ly\\b');
    await page.uncheck('#bans-defaults');
    await page.click('#save-bans');
    await page.waitForFunction(() => document.getElementById('message').textContent === '');
    await page.reload();
    await page.waitForFunction(() => document.getElementById('bans-phrases').value !== '');
    const bans = await page.evaluate(() => ({ phrases: document.getElementById('bans-phrases').value, regex: document.getElementById('bans-regex').value, defaults: document.getElementById('bans-defaults').checked }));
    check(bans.phrases === 'suddenly\nall of a sudden' && bans.regex === '\\bvery \\w+ly\\b' && bans.defaults === false, `the project's banned phrases are saved and kept over a reload (${JSON.stringify(bans)})`);

    // A long chapter: the editor says how much of it the model has read, and Stop ends
    // the reading at once.
    await page.fill('#doc-title', 'Chapter 2');
    await page.click('#create-doc');
    await page.waitForFunction(() => !document.getElementById('text').disabled && document.getElementById('text').value === '');
    const chapter = 'The storm kept the boats in the harbour for a week, and every evening the keeper wrote to his sister about the light. '.repeat(60);
    await text.fill(chapter);
    await saved();
    await page.selectOption('#tool', 'continue');
    await text.evaluate((t) => t.setSelectionRange(t.value.length, t.value.length));
    await page.click('#run');
    await page.waitForFunction(() => /^Reading your chapter… \d+%$/.test(document.getElementById('reading').textContent) && !document.getElementById('reading').hidden, null, { timeout: 60000 });
    const reading = await page.textContent('#reading');
    if (screenshot) await page.screenshot({ path: screenshot.replace(/\.png$/, '-reading.png'), fullPage: true });
    await page.click('#stop');
    await page.waitForFunction(() => !document.getElementById('run').disabled && document.getElementById('reading').hidden, null, { timeout: 15000 });
    check(true, `a long chapter shows the reading's progress ("${reading}") and Stop ends it`);

    // The book: stages in the binder, a stale mark after an edit, a locked beat kept
    // through regeneration, a chapter marked done and summarized, the context viewer.
    const project = 'Lighthouse';
    const book = (path, method, body) => page.evaluate(async ([p, m, b]) => {
      const r = await fetch(p, { method: m, headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
      if (!r.ok) throw new Error(`${m} ${p}: ${r.status} ${await r.text()}`);
      return r.json();
    }, [`/api/projects/${project}/book${path}`, method, body]);
    await page.click('#binder li[data-stage="braindump"] .act');
    await page.waitForSelector('#binder li[data-stage="braindump"] button.link:not([disabled])');
    await page.click('#binder li[data-stage="braindump"] button.link');
    await page.waitForFunction(() => !document.getElementById('text').disabled && document.getElementById('text').value === '');
    await text.fill('A keeper, a storm, and a smith who will not say where he is from.');
    await saved();
    await page.click('#binder li[data-stage="synopsis"] .act');
    await page.waitForFunction(() => /\d+ words/.test(document.querySelector('#binder li[data-stage="synopsis"] .meta').textContent) && !/not written/.test(document.querySelector('#binder li[data-stage="synopsis"] .meta').textContent), null, { timeout: 120000 });
    check(!(await page.$('#binder li[data-stage="synopsis"] .stale-mark')), 'the binder generates the synopsis from the braindump');
    await text.fill('A keeper and a storm.');
    await saved();
    await page.waitForSelector('#binder li[data-stage="synopsis"] .stale-mark');
    check(true, 'editing the braindump marks the synopsis stale');

    await book('/outline', 'PUT', { text: '1. The Wreck: Oren washes ashore.\n2. The Storm: the lamp fails.' });
    await book('/beats', 'PUT', { chapter: 1, text: '1. Mara sees the wreck.\n2. She drags Oren up the stair.\n3. He will not say his name.' });
    await page.evaluate(() => loadBinder());
    const beat2 = '#binder li[data-chapter="1"] .beats .part:nth-child(2)';
    await page.waitForSelector(`${beat2} input`);
    await page.check(`${beat2} input`);
    await page.waitForFunction((sel) => document.querySelector(sel)?.querySelector('input').checked, beat2);
    await page.click('#binder li[data-chapter="1"] .beats .act');
    await page.waitForFunction(() => document.getElementById('message').textContent === '', null, { timeout: 120000 });
    await page.waitForSelector(`${beat2} .part-text`);
    const kept = await page.textContent(`${beat2} .part-text`);
    const regenerated = await page.evaluate(async (p) => (await fetch(`/api/projects/${p}/book/beats?chapter=1`)).json(), project);
    check(kept === 'She drags Oren up the stair.' && regenerated.parts[1] === kept, `a locked beat is unchanged when the beats are regenerated ("${kept}")`);

    await page.click('#binder li[data-chapter="1"] > .act');
    await page.waitForSelector('#binder li[data-chapter="1"] .done-mark', { timeout: 120000 });
    await page.waitForFunction(() => /\d+ words/.test(document.querySelector('#binder li[data-chapter="1"] .summary .meta').textContent) && !document.querySelector('#binder li[data-chapter="1"] .summary .stale-mark'));
    check(true, 'marking a chapter done summarizes it in the binder');
    const drafts = await page.$$eval('#binder li[data-chapter="1"] > button.act', (bs) => bs.map((b) => b.textContent));
    check(drafts.includes('Draft'), `a chapter with beats offers to draft it from them (${drafts.join(', ')})`);

    // The writer's voice: learnt from pages they wrote themselves, then each suggestion
    // says how close it is to it.
    await page.evaluate(async (p) => {
      const pages = 'The lamp burned low; Mara counted the waves and did not sleep. "Not tonight," she said to the dark.\n\n'.repeat(30);
      const r = await fetch(`/api/projects/${p}/documents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Pages in my voice', text: pages }) });
      if (!r.ok) throw new Error(`adding pages: ${r.status} ${await r.text()}`);
    }, project);
    await page.click('#voice-panel summary');
    await page.waitForSelector('#voice-description li');
    await page.click('#voice-build');
    await page.waitForFunction(() => /^Built from \d+ words/.test(document.querySelector('#voice-description li')?.textContent || ''), null, { timeout: 30000 });
    const described = await page.$$eval('#voice-description li', (lis) => lis.map((l) => l.textContent));
    check(described.some((l) => l.startsWith('Your sentences average')), `the editor learns the writer's voice and describes it ("${described[1]}")`);
    // Learning from choices: the panel counts them and says how many more it needs (a
    // training itself is driven end to end by the binary's `learn_cli` test).
    await page.waitForFunction(() => /choices noted|choices to learn from/.test(document.getElementById('learning-status').textContent), null, { timeout: 30000 });
    const learning = await page.textContent('#learning-status');
    const pairs = Number((learning.match(/^(\d+) choices/) || [])[1]);
    const needed = /(\d+) are needed/.test(learning);
    check(Number.isInteger(pairs) && (needed ? await page.isDisabled('#learning-start') : !(await page.isDisabled('#learning-start'))), `the panel counts the writer's choices and offers to learn from them ("${learning}")`);

    await page.selectOption('#document', { label: 'Chapter 2' });
    await page.waitForFunction(() => document.getElementById('text').value.length > 100);
    await page.selectOption('#tool', 'continue');
    await page.fill('#n', '1');
    await text.evaluate((t) => t.setSelectionRange(t.value.length, t.value.length));
    await page.click('#run');
    await page.waitForSelector('#candidates .context', { timeout: 180000 });
    await page.click('#candidates .context summary');
    const partsShown = await page.$$eval('#candidates .context-part b', (bs) => bs.map((b) => b.textContent));
    check(partsShown.includes('summary: chapter 1') && partsShown.some((p) => p.startsWith('story')), `the context viewer lists the prompt's parts (${partsShown.join(', ')})`);
    if (screenshot) await page.screenshot({ path: screenshot.replace(/\.png$/, '-book.png'), fullPage: true });
    await page.waitForSelector('#candidates .voice-reason, #candidates .candidate', { timeout: 30000 });
    const reason = await page.$eval('#candidates .voice-reason', (d) => d.textContent).catch(() => '');
    check(/^Your voice: .*your voice/.test(reason), `a suggestion says how close it is to the writer's voice ("${reason}")`);

    check((await page.textContent('#message')) === '', `no error is shown at the end (${await page.textContent('#message')})`);
    check(errors.length === 0, `no script errors on the page ${errors.join('; ')}`);
  } finally {
    if (screenshot) await page.screenshot({ path: screenshot.replace(/\.png$/, '-final.png'), fullPage: true }).catch(() => {});
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
