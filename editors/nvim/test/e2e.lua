-- End-to-end test of rlm.nvim in a real headless Neovim with the real rlm-lsp, against a scripted
-- OpenAI-compatible model server. tests/e2e_nvim.rs sets it up and runs:
--
--   nvim --headless --clean --cmd 'set rtp^=editors/nvim' -l editors/nvim/test/e2e.lua
--
-- with RLM_TEST_BIN (the rlm-lsp binary), RLM_TEST_BASE_URL (the scripted model, .../v1) and
-- RLM_TEST_WORKSPACE (a fixture workspace with src/lib.rs). The script's steps are keyed by the
-- questions below (see tests/e2e_nvim.rs). Exits 0 when every check passed, 1 otherwise.

local t0 = vim.uv.hrtime()
local failures = {}
local messages = {}

local function log(fmt, ...)
  io.stdout:write(('[e2e %6.2fs] '):format((vim.uv.hrtime() - t0) / 1e9) .. fmt:format(...) .. '\n')
  io.stdout:flush()
end

-- Keep what the plugin tells the user, to show it on failure.
vim.notify = function(msg, level)
  table.insert(messages, msg)
  log('notify(%s): %s', tostring(level or ''), msg)
end

local function fail(msg)
  error({ msg = msg }, 0)
end

local function check(cond, msg, ...)
  if not cond then
    fail(msg:format(...))
  end
end

--- Waits for `cond` up to `ms`; fails with `what` on time-out.
local function wait_for(ms, what, cond)
  local ok = vim.wait(ms, function()
    local r = cond()
    return r ~= nil and r ~= false
  end, 20)
  if not ok then
    fail(('timed out after %d ms waiting for %s'):format(ms, what))
  end
end

local function step(name, fn)
  local started = vim.uv.hrtime()
  local ok, err = xpcall(fn, function(e)
    if type(e) == 'table' and e.msg then
      return e.msg
    end
    return debug.traceback(tostring(e), 2)
  end)
  local ms = (vim.uv.hrtime() - started) / 1e6
  if ok then
    log('ok   %s (%d ms)', name, ms)
  else
    log('FAIL %s (%d ms): %s', name, ms, err)
    table.insert(failures, name .. ': ' .. err)
  end
  return ok
end

local function finish()
  local rlm = package.loaded.rlm
  for _, client in ipairs(vim.lsp.get_clients({ name = 'rlm' })) do
    client:stop(true)
  end
  if #failures > 0 then
    log('%d failure(s):', #failures)
    for _, f in ipairs(failures) do
      log('  - %s', f)
    end
    if rlm then
      log('runs: %s', vim.inspect(vim.tbl_map(function(r)
        return { status = r.status, error = r.error, message = r.message, ended = r.ended }
      end, rlm.state.runs)))
    end
    log('LSP log: %s', vim.lsp.get_log_path())
    os.exit(1)
  end
  log('all passed')
  os.exit(0)
end

local function buf_by_name(name)
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_get_name(b) == name then
      return b
    end
  end
end

local function buf_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
end

--- With RLM_TEST_DUMP=1, prints the buffers the plugin shows (to look at them).
local function dump(name, text)
  if vim.env.RLM_TEST_DUMP == '1' then
    log('--- %s ---\n%s\n--- end of %s ---', name, text, name)
  end
end

local function contains(haystack, needle)
  return haystack:find(needle, 1, true) ~= nil
end

local bin = vim.env.RLM_TEST_BIN
local base_url = vim.env.RLM_TEST_BASE_URL
local ws = vim.env.RLM_TEST_WORKSPACE
local lib_rs = ws and vim.fs.joinpath(ws, 'src', 'lib.rs')

local rlm
local lib_buf
local client

if
  not step('environment', function()
    check(bin and vim.fn.executable(bin) == 1, 'RLM_TEST_BIN is not an executable: %s', tostring(bin))
    check(base_url and base_url ~= '', 'RLM_TEST_BASE_URL is not set')
    check(ws and vim.fn.filereadable(lib_rs) == 1, 'RLM_TEST_WORKSPACE has no src/lib.rs: %s', tostring(ws))
    check(vim.fn.has('nvim-0.11') == 1, 'Neovim 0.11+ is needed, this is %s', tostring(vim.version()))
    check(vim.fn.exists(':RlmAsk') == 2, 'plugin/rlm.lua was not loaded from the runtimepath')
  end)
then
  finish()
end

-- Start the server the way a user does: explicit set-up, then open a file of the workspace.
if
  not step('setup and attach', function()
    rlm = require('rlm')
    rlm.setup({
      cmd = { bin, 'serve' },
      settings = { baseUrl = base_url, model = 'scripted', maxIterations = 5, timeoutSecs = 120, maxRetries = 0 },
    })
    local cfg = vim.lsp.config.rlm
    check(cfg.init_options.baseUrl == base_url, 'init_options.baseUrl not set: %s', vim.inspect(cfg.init_options))
    vim.cmd.edit(vim.fn.fnameescape(lib_rs))
    lib_buf = vim.api.nvim_get_current_buf()
    wait_for(15000, 'the rlm client to attach and initialize', function()
      client = vim.lsp.get_clients({ name = 'rlm', bufnr = lib_buf })[1]
      return client and client.initialized
    end)
    check(
      vim.fs.normalize(client.root_dir) == vim.fs.normalize(vim.uv.fs_realpath(ws)),
      'root_dir %s is not the workspace %s (root_markers)',
      tostring(client.root_dir),
      ws
    )
    local cmds = client.server_capabilities.executeCommandProvider.commands
    for _, c in ipairs({ 'rlm.ask', 'rlm.explain', 'rlm.planRefactor', 'rlm.cancel', 'rlm.status' }) do
      check(vim.tbl_contains(cmds, c), 'the server does not offer %s', c)
    end
    check(client.server_capabilities.hoverProvider, 'no hover provider')
  end)
then
  finish()
end

--- Waits for the run started last by a command to finish; returns it.
local function await_run(previous, ms, what)
  local run
  wait_for(5000, what .. ' to start', function()
    run = rlm.state.last
    return run and run ~= previous
  end)
  wait_for(ms, what .. ' to finish', function()
    return run.status ~= 'running'
  end)
  return run
end

step(':RlmAsk shows the answer and fills the quickfix list with verified citations', function()
  -- Progress shown while it runs: the statusline component and LspProgress.
  local seen_statusline, seen_progress = nil, false
  local au = vim.api.nvim_create_autocmd('LspProgress', {
    callback = function(ev)
      if ev.data.params.token and tostring(ev.data.params.token):find('^rlm%.nvim/') then
        seen_progress = true
      end
    end,
  })
  local prev = rlm.state.last
  vim.cmd('RlmAsk What number does alpha return?')
  local run
  wait_for(5000, 'the ask to start', function()
    run = rlm.state.last ~= prev and rlm.state.last
    if run and run.status == 'running' then
      local s = rlm.statusline()
      if s ~= '' then
        seen_statusline = seen_statusline or s
      end
    end
    return run
  end)
  wait_for(20000, 'the ask to finish', function()
    local s = rlm.statusline()
    if s ~= '' then
      seen_statusline = seen_statusline or s
    end
    return run.status ~= 'running'
  end)
  vim.api.nvim_del_autocmd(au)
  check(run.status == 'done', 'the run ended %s: %s', run.status, tostring(run.error))
  check(seen_statusline and contains(seen_statusline, 'rlm'), 'statusline() showed nothing while the run went on')
  check(seen_progress, 'no $/progress (LspProgress) for the run token')
  check(rlm.statusline() == '', 'statusline() still shows a run: %s', rlm.statusline())
  check(run.ended and contains(run.ended, 'done'), 'progress end: %s', tostring(run.ended))
  local buf = buf_by_name('rlm://answer')
  check(buf, 'no rlm://answer buffer')
  local text = buf_text(buf)
  dump('answer', text)
  dump('quickfix', vim.inspect(vim.fn.getqflist()))
  check(contains(text, 'alpha returns 42'), 'the answer buffer lacks the answer:\n%s', text)
  check(contains(text, '- src/lib.rs:1'), 'the answer buffer lacks the citation:\n%s', text)
  check(contains(text, 'src/nowhere.rs:3 (not verified'), 'the unverified citation is not marked:\n%s', text)
  check(vim.bo[buf].filetype == 'markdown', 'filetype %s', vim.bo[buf].filetype)
  local win = vim.fn.win_findbuf(buf)[1]
  check(win and vim.api.nvim_win_get_config(win).relative ~= '', 'the answer is not in a floating window')
  local qf = vim.fn.getqflist({ items = 1, title = 1 })
  check(#qf.items == 2, 'quickfix holds %d items, want the 2 verified citations: %s', #qf.items, vim.inspect(qf.items))
  for _, it in ipairs(qf.items) do
    local name = vim.api.nvim_buf_get_name(it.bufnr)
    check(vim.uv.fs_realpath(name) == vim.uv.fs_realpath(lib_rs), 'quickfix item in %s', name)
  end
  check(qf.items[1].lnum == 1 and qf.items[2].lnum == 6, 'quickfix lines %d, %d', qf.items[1].lnum, qf.items[2].lnum)
  -- <CR> on the line of the second citation opens src/lib.rs:6 in the window the ask came from.
  vim.api.nvim_set_current_win(win)
  local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  local target
  for i, l in ipairs(lines) do
    if l == '- src/lib.rs:6' then
      target = i
    end
  end
  check(target, 'no citation line "- src/lib.rs:6" in:\n%s', text)
  vim.api.nvim_win_set_cursor(win, { target, 4 })
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('<CR>', true, false, true), 'x', false)
  check(not vim.api.nvim_win_is_valid(win), 'the answer float is still open after <CR>')
  check(vim.api.nvim_get_current_buf() == lib_buf, 'the citation opened %s', vim.api.nvim_buf_get_name(0))
  check(vim.api.nvim_win_get_cursor(0)[1] == 6, 'the cursor is on line %d, want 6', vim.api.nvim_win_get_cursor(0)[1])
end)

step(':RlmExplain on a symbol explains it, and :RlmTrajectory shows the run', function()
  vim.api.nvim_set_current_buf(lib_buf)
  vim.api.nvim_win_set_cursor(0, { 6, 5 }) -- `alpha` in `    alpha() + 1`
  check(vim.fn.expand('<cword>') == 'alpha', 'cursor on %s', vim.fn.expand('<cword>'))
  local prev = rlm.state.last
  vim.cmd('RlmExplain')
  local run = await_run(prev, 30000, 'the explain run')
  check(run.status == 'done', 'the explain ended %s: %s', run.status, tostring(run.error))
  check(run.kind == 'explain' and run.result.symbol == 'alpha', 'symbol %s', tostring(run.result and run.result.symbol))
  local text = buf_text(buf_by_name('rlm://answer'))
  check(contains(text, 'Explain `alpha`'), 'the title is missing:\n%s', text)
  check(contains(text, 'alpha returns the constant 42'), 'the explanation is missing:\n%s', text)
  vim.cmd('close')
  -- The run ran real code in the REPL: the trajectory tree shows it.
  vim.cmd('RlmTrajectory')
  local tbuf = buf_by_name('rlm://trajectory')
  check(tbuf, 'no rlm://trajectory buffer')
  local tree = buf_text(tbuf)
  dump('trajectory', tree)
  for _, want in ipairs({ 'iteration 1', 'code cell 1', "print(grep('alpha'))", 'output:', 'src/lib.rs', 'end: final', 'tokens' }) do
    check(contains(tree, want), 'the trajectory lacks %q:\n%s', want, tree)
  end
  vim.cmd('close')
  -- Hover is the server's, through the standard vim.lsp.buf.hover(): after the explanation it
  -- shows it.
  vim.api.nvim_set_current_buf(lib_buf)
  check(vim.fn.expand('<cword>') == 'alpha', 'cursor on %s', vim.fn.expand('<cword>'))
  vim.lsp.buf.hover()
  local hover
  wait_for(5000, 'the hover window', function()
    for _, w in ipairs(vim.api.nvim_list_wins()) do
      if vim.api.nvim_win_get_config(w).relative ~= '' then
        hover = buf_text(vim.api.nvim_win_get_buf(w))
        return hover
      end
    end
  end)
  dump('hover', hover)
  check(contains(hover, 'alpha returns the constant 42'), 'hover lacks the explanation:\n%s', hover)
  check(contains(hover, 'src/lib.rs:1'), 'hover lacks the definition site:\n%s', hover)
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(w).relative ~= '' then
      vim.api.nvim_win_close(w, true)
    end
  end
end)

step("the refactor plan shows the check command's verdict", function()
  local lines = require('rlm.refactor').check_lines({ command = 'cargo check', passed = false, exitCode = 101, outputTail = 'error[E0425]: x\n' })
  local text = table.concat(lines, '\n')
  check(contains(text, '**Check failed**: `cargo check` (exit code 101)'), 'no verdict:\n%s', text)
  check(contains(text, 'error[E0425]: x'), 'no output:\n%s', text)
  local ok = table.concat(require('rlm.refactor').check_lines({ command = 'make', passed = true }), '\n')
  check(contains(ok, '**Check passed**: `make`'), 'no pass line:\n%s', ok)
  check(#require('rlm.refactor').check_lines(nil) == 0, 'a line without a check')
end)

step(':RlmRefactor previews a diff; discard with `q` leaves the buffer alone', function()
  vim.api.nvim_set_current_buf(lib_buf)
  local before = buf_text(lib_buf)
  local prev = rlm.state.last
  vim.cmd('RlmRefactor Rename caller to user')
  local run = await_run(prev, 30000, 'the refactor run')
  check(run.status == 'done', 'the refactor ended %s: %s', run.status, tostring(run.error))
  wait_for(2000, 'the preview', function()
    return rlm.state.refactor
  end)
  local preview = rlm.state.refactor.preview_buf
  check(vim.api.nvim_get_current_buf() == preview, 'the preview buffer is not current')
  local diff = buf_text(preview)
  check(contains(diff, '-pub fn caller() -> u32 {') and contains(diff, '+pub fn user() -> u32 {'), 'diff:\n%s', diff)
  vim.api.nvim_feedkeys('q', 'x', false)
  check(rlm.state.refactor == nil, 'the plan is still pending after `q`')
  check(buf_by_name('rlm://refactor/preview') == nil, 'the preview buffer is still there')
  check(buf_text(lib_buf) == before, 'discarding changed the buffer')
end)

step(':RlmRefactor previews the edits and :RlmRefactorApply applies them', function()
  vim.api.nvim_set_current_buf(lib_buf)
  vim.api.nvim_win_set_cursor(0, { 1, 8 })
  local on_disk = table.concat(vim.fn.readfile(lib_rs), '\n')
  local prev = rlm.state.last
  vim.cmd('RlmRefactor Rename alpha to first')
  local run = await_run(prev, 30000, 'the refactor run')
  check(run.status == 'done', 'the refactor ended %s: %s', run.status, tostring(run.error))
  wait_for(2000, 'the preview', function()
    return rlm.state.refactor
  end)
  local r = rlm.state.refactor
  local plan = buf_text(r.plan_buf)
  check(contains(plan, 'Rename alpha to first everywhere.'), 'plan buffer:\n%s', plan)
  check(contains(plan, '2 edits in 1 file'), 'plan buffer:\n%s', plan)
  check(contains(plan, 'Edits dropped by the checks') and contains(plan, 'README.md'), 'the dropped edit is not listed:\n%s', plan)
  local diff = buf_text(r.preview_buf)
  dump('plan', plan)
  dump('preview', diff)
  for _, want in ipairs({
    '--- a/',
    'src/lib.rs',
    '-pub fn alpha() -> u32 {',
    '+pub fn first() -> u32 {',
    '-    alpha() + 1',
    '+    first() + 1',
    '@@',
  }) do
    check(contains(diff, want), 'the diff lacks %q:\n%s', want, diff)
  end
  check(vim.fn.maparg('a', 'n', false, true).buffer == 1, 'no `a` key in the preview buffer')
  check(vim.fn.maparg('d', 'n', false, true).buffer == 1, 'no `d` key in the preview buffer')
  check(buf_text(lib_buf):find('fn alpha'), 'the buffer changed before apply')
  vim.cmd('RlmRefactorApply')
  check(rlm.state.refactor == nil, 'the plan is still pending after apply')
  local lines = vim.api.nvim_buf_get_lines(lib_buf, 0, -1, false)
  check(lines[1] == 'pub fn first() -> u32 {', 'line 1 is %q', lines[1])
  check(lines[6] == '    first() + 1', 'line 6 is %q', lines[6])
  check(not buf_text(lib_buf):find('alpha'), 'alpha is left in the buffer:\n%s', buf_text(lib_buf))
  check(vim.bo[lib_buf].modified, 'the buffer is not marked modified')
  check(table.concat(vim.fn.readfile(lib_rs), '\n') == on_disk, 'apply wrote the file')
  check(buf_by_name('rlm://refactor/plan') == nil, 'the plan buffer is still there')
end)

step(':RlmCancel stops an ask in flight (rlm.cancel) and the server stays usable', function()
  local prev = rlm.state.last
  vim.cmd('RlmAsk Take your time with this slow question')
  local run
  wait_for(5000, 'the slow ask to start', function()
    run = rlm.state.last ~= prev and rlm.state.last
    return run and rlm.state.progress[run.token]
  end)
  -- Let it reach the model (the scripted reply takes 60 s).
  vim.wait(300)
  check(run.status == 'running', 'the slow run is %s', run.status)
  local t = vim.uv.now()
  vim.cmd('RlmCancel')
  wait_for(3000, 'the run to be cancelled', function()
    return run.status == 'cancelled'
  end)
  wait_for(3000, "the server's progress end", function()
    return run.ended
  end)
  check(run.ended == 'cancelled', 'the server ended the progress with %q', tostring(run.ended))
  log('cancelled in %d ms', vim.uv.now() - t)
  check(rlm.statusline() == '', 'statusline() still shows a run: %s', rlm.statusline())
  -- :RlmStatus answers and shows no run in flight.
  rlm.state.status = nil
  vim.cmd('RlmStatus')
  wait_for(5000, 'rlm.status', function()
    return rlm.state.status
  end)
  local st = rlm.state.status
  check(#st.runsInFlight == 0, 'runs still in flight: %s', vim.inspect(st.runsInFlight))
  check(st.config.baseUrl == base_url, 'status config: %s', vim.inspect(st.config))
  local sbuf = buf_by_name('rlm://status')
  local stext = buf_text(sbuf)
  dump('status', stext)
  check(contains(stext, '# rlm-lsp ' .. st.version) and contains(stext, '## Roots'), 'status buffer:\n%s', stext)
  vim.cmd('close')
  -- Another ask goes through (the question comes from vim.ui.input).
  local input = vim.ui.input
  vim.ui.input = function(_, on_confirm)
    on_confirm('Is the server still usable?')
  end
  prev = rlm.state.last
  vim.cmd('RlmAsk')
  vim.ui.input = input
  local again = await_run(prev, 20000, 'the ask after the cancel')
  check(again.status == 'done', 'the ask after the cancel ended %s: %s', again.status, tostring(again.error))
  check(contains(again.result.answer, 'still here'), 'answer: %s', again.result.answer)
  vim.cmd('close')
end)

step(':RlmCancel stops a refactor in flight by its id', function()
  vim.api.nvim_set_current_buf(lib_buf)
  local prev = rlm.state.last
  vim.cmd('RlmRefactor Slow refactor of everything')
  local run
  wait_for(5000, 'the slow refactor to start', function()
    run = rlm.state.last ~= prev and rlm.state.last
    return run and rlm.state.progress[run.token]
  end)
  vim.wait(300)
  check(run.status == 'running', 'the slow refactor is %s', run.status)
  vim.cmd('RlmCancel ' .. run.id)
  wait_for(3000, 'the refactor to be cancelled', function()
    return run.status == 'cancelled'
  end)
  wait_for(3000, "the server's progress end", function()
    return run.ended
  end)
  check(run.ended == 'cancelled', 'the server ended the progress with %q', tostring(run.ended))
  rlm.state.status = nil
  vim.cmd('RlmStatus')
  wait_for(5000, 'rlm.status', function()
    return rlm.state.status
  end)
  check(#rlm.state.status.runsInFlight == 0, 'runs still in flight: %s', vim.inspect(rlm.state.status.runsInFlight))
  vim.cmd('close')
end)

step(':checkhealth rlm', function()
  vim.cmd('checkhealth rlm')
  local buf = vim.api.nvim_get_current_buf()
  local text = buf_text(buf)
  dump('checkhealth', text)
  local version = vim.trim(vim.fn.system({ bin, '--version' }))
  check(version:match('^rlm%-lsp %d'), '`rlm-lsp --version` printed %q', version)
  for _, want in ipairs({
    'rlm-lsp binary',
    '- ✅ OK version: ' .. version,
    '- ✅ OK binary: ' .. bin,
    'libpython3.11',
    'Landlock',
    '- ✅ OK ' .. base_url .. '/models reachable: 1 model (scripted)',
    'files indexed',
  }) do
    check(contains(text, want), 'the health report lacks %q:\n%s', want, text)
  end
  check(not contains(text, 'ERROR'), 'the health report has errors:\n%s', text)
end)

finish()
