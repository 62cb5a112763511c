-- Scratch buffers and windows: answers with citations, status, trajectories.

local M = {}

local function config()
  return require('rlm').config
end

--- The window a command was run from: citations open there.
local origin_win

function M.remember_origin()
  local win = vim.api.nvim_get_current_win()
  if vim.api.nvim_win_get_config(win).relative == '' then
    origin_win = win
  end
end

--- A scratch buffer named `name` (reused when it exists), filled with `lines`.
---@param name string
---@param lines string[]
---@param filetype string
---@return integer bufnr
function M.scratch(name, lines, filetype)
  local buf
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_get_name(b) == name then
      buf = b
    end
  end
  if not buf then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, name)
  end
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].swapfile = false
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
  vim.bo[buf].filetype = filetype
  vim.keymap.set('n', 'q', function()
    M.close(buf)
  end, { buffer = buf, nowait = true, desc = 'rlm: close' })
  return buf
end

--- Closes the windows showing `buf`.
function M.close(buf)
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    if #vim.api.nvim_list_wins() > 1 then
      pcall(vim.api.nvim_win_close, win, true)
    else
      vim.api.nvim_win_set_buf(win, vim.api.nvim_create_buf(true, false))
    end
  end
end

--- Shows `buf` as configured (a float, a split or a tab); returns the window.
---@param buf integer
---@param title string
---@param how? string
function M.open(buf, title, how)
  how = how or config().window
  local existing = vim.fn.win_findbuf(buf)[1]
  if existing then
    vim.api.nvim_set_current_win(existing)
    if vim.api.nvim_win_get_config(existing).relative ~= '' then
      local width = vim.api.nvim_win_get_width(existing)
      vim.api.nvim_win_set_config(existing, { title = ' ' .. title:gsub('\n', ' '):sub(1, width - 4) .. ' ', title_pos = 'center' })
    end
    vim.api.nvim_win_set_cursor(existing, { 1, 0 })
    return existing
  end
  local win
  if how == 'float' then
    local f = config().float or {}
    local width = math.max(40, math.floor(vim.o.columns * (f.width or 0.8)))
    local height = math.max(8, math.floor((vim.o.lines - vim.o.cmdheight) * (f.height or 0.8)))
    width = math.min(width, vim.o.columns - 2)
    height = math.min(height, vim.o.lines - vim.o.cmdheight - 2)
    win = vim.api.nvim_open_win(buf, true, {
      relative = 'editor',
      width = width,
      height = height,
      row = math.floor((vim.o.lines - height) / 2) - 1,
      col = math.floor((vim.o.columns - width) / 2),
      border = f.border or 'rounded',
      title = ' ' .. title:gsub('\n', ' '):sub(1, width - 4) .. ' ',
      title_pos = 'center',
      style = 'minimal',
    })
  else
    vim.cmd(({ split = 'botright split', vsplit = 'botright vsplit', tab = 'tabnew' })[how] or 'botright split')
    win = vim.api.nvim_get_current_win()
    local scratch = vim.api.nvim_get_current_buf()
    vim.api.nvim_win_set_buf(win, buf)
    if scratch ~= buf and vim.api.nvim_buf_get_name(scratch) == '' and vim.bo[scratch].buftype == '' then
      pcall(vim.api.nvim_buf_delete, scratch, {})
    end
  end
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.wo[win].conceallevel = 2
  vim.wo[win].concealcursor = 'n'
  return win
end

local function split_lines(text)
  return vim.split(text or '', '\n', { plain = true })
end

local function fmt_int(n)
  return tostring(math.floor(tonumber(n) or 0))
end

--- One line per usage row: "root scripted (depth 0): 2 calls, 900 prompt (0 cached) + 80 completion tokens, $0.0000, 850 ms"
function M.usage_lines(usage)
  local out = {}
  for _, u in ipairs(type(usage) == 'table' and usage or {}) do
    table.insert(
      out,
      ('%s %s (depth %s): %s calls, %s prompt (%s cached) + %s completion tokens, $%.4f, %s ms'):format(
        u.role or '?',
        u.model or '?',
        fmt_int(u.depth),
        fmt_int(u.calls),
        fmt_int(u.prompt_tokens),
        fmt_int(u.cached_tokens),
        fmt_int(u.completion_tokens),
        tonumber(u.cost_usd) or 0,
        fmt_int(u.latency_ms)
      )
    )
  end
  return out
end

--- The summary line of a result: stop reason, turns, sub-calls, time.
function M.summary(result)
  local turns, subs = tonumber(result.iterations) or 0, tonumber(result.subCalls) or 0
  local s = ('%s · %d turn%s · %d sub-call%s · %.1f s'):format(
    result.stopReason or '?',
    turns,
    turns == 1 and '' or 's',
    subs,
    subs == 1 and '' or 's',
    (tonumber(result.wallMs) or 0) / 1000
  )
  if result.bestEffort then
    s = s .. ' · partial answer'
  end
  return s
end

--- The verified citations of a result as {text = 'path:line', filename, lnum}.
function M.citations(result)
  local out = {}
  for _, c in ipairs(result.citations or {}) do
    if c.verified and c.uri then
      table.insert(out, {
        text = ('%s:%d'):format(c.path, c.line),
        path = c.path,
        filename = vim.uri_to_fname(c.uri),
        lnum = c.line,
      })
    end
  end
  return out
end

--- Fills the quickfix list with the verified citations; the text is the answer line that cites.
function M.set_quickfix(result, title)
  local items = {}
  local answer_lines = split_lines(result.answer)
  for _, c in ipairs(M.citations(result)) do
    local context = c.text
    for _, l in ipairs(answer_lines) do
      local s = l:find(c.text, 1, true)
      if s then
        -- The words around the mention, not a whole paragraph.
        local from, to = math.max(1, s - 60), s + #c.text + 60
        context = (from > 1 and '…' or '') .. vim.trim(l:sub(from, to)) .. (to < #l and '…' or '')
        break
      end
    end
    table.insert(items, { filename = c.filename, lnum = c.lnum, col = 1, text = context })
  end
  vim.fn.setqflist({}, ' ', { title = 'rlm: ' .. title, items = items })
  return #items
end

--- The citation at the cursor's line of an answer buffer (the one under the cursor first).
---@param buf integer
---@return table?
function M.citation_at_cursor(buf)
  local cites = vim.b[buf].rlm_citations or {}
  local line = vim.api.nvim_get_current_line()
  local col = vim.api.nvim_win_get_cursor(0)[2] + 1
  local best
  for _, c in ipairs(cites) do
    local init = 1
    while true do
      local s, e = line:find(c.text, init, true)
      if not s then
        break
      end
      local before = s > 1 and line:sub(s - 1, s - 1) or ''
      local after = line:sub(e + 1, e + 1)
      -- A whole mention: `a.rs:1` is not a mention inside `xa.rs:12`.
      if not before:match('[%w_./-]') and not after:match('%d') then
        if col >= s and col <= e then
          return c
        end
        best = best or c
      end
      init = e + 1
    end
  end
  return best
end

--- Opens a citation in the window the command was run from (else the previous window).
function M.jump(c)
  if not c then
    return require('rlm').notify('no verified citation on this line', vim.log.levels.WARN)
  end
  local cur = vim.api.nvim_get_current_win()
  local is_float = vim.api.nvim_win_get_config(cur).relative ~= ''
  local target = origin_win
  if not (target and vim.api.nvim_win_is_valid(target)) or target == cur then
    target = nil
    for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
      if w ~= cur and vim.api.nvim_win_get_config(w).relative == '' then
        target = w
        break
      end
    end
  end
  if is_float then
    pcall(vim.api.nvim_win_close, cur, true)
  end
  if target and vim.api.nvim_win_is_valid(target) then
    vim.api.nvim_set_current_win(target)
  elseif not is_float then
    vim.cmd('aboveleft split')
  end
  vim.cmd.edit(vim.fn.fnameescape(c.filename))
  local last = vim.api.nvim_buf_line_count(0)
  vim.api.nvim_win_set_cursor(0, { math.min(c.lnum, last), 0 })
  vim.cmd('normal! zz')
end

--- Shows an ask or explain result: the answer (Markdown), its citations, a summary.
---@param result table
---@param run rlm.Run
function M.show_answer(result, run)
  local lines = { '# ' .. (run.title:gsub('\n', ' ')), '' }
  vim.list_extend(lines, split_lines(result.answer))
  local cites = M.citations(result)
  local all = result.citations or {}
  if #all > 0 then
    vim.list_extend(lines, { '', '## Citations', '' })
    for _, c in ipairs(all) do
      if c.verified and c.uri then
        table.insert(lines, ('- %s:%d'):format(c.path, c.line))
      else
        local why = type(c.reason) == 'string' and c.reason or 'no such file or line'
        table.insert(lines, ('- %s:%d (not verified: %s)'):format(c.path, c.line, why))
      end
    end
  end
  vim.list_extend(lines, { '', '---', ('%s · %s'):format(run.id, M.summary(result)) })
  for _, u in ipairs(M.usage_lines(result.usage)) do
    table.insert(lines, '- ' .. u)
  end
  table.insert(lines, '')
  table.insert(lines, '<CR> on a citation opens it · q closes · :RlmTrajectory shows the run')
  local buf = M.scratch('rlm://answer', lines, 'markdown')
  vim.b[buf].rlm_citations = cites
  vim.b[buf].rlm_run = run.id
  vim.keymap.set('n', '<CR>', function()
    M.jump(M.citation_at_cursor(buf))
  end, { buffer = buf, nowait = true, desc = 'rlm: open the citation' })
  local n = M.set_quickfix(result, run.title)
  M.open(buf, run.title)
  if n > 0 then
    require('rlm').notify(('%d verified citation%s in the quickfix list'):format(n, n == 1 and '' or 's'))
  end
  return buf
end

local function kv_lines(t, indent)
  local out = {}
  local keys = vim.tbl_keys(t)
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == 'table' then
      table.insert(out, ('%s- %s: %s'):format(indent, k, vim.json.encode(v)))
    elseif v ~= vim.NIL then
      table.insert(out, ('%s- %s: %s'):format(indent, k, tostring(v)))
    end
  end
  return out
end

--- `:RlmStatus`
function M.show_status(status, client)
  local lines = {
    '# rlm-lsp ' .. tostring(status.version or '?'),
    '',
    ('client %d, root %s'):format(client.id, client.root_dir or '(none)'),
    '',
    '## Settings',
    '',
  }
  vim.list_extend(lines, kv_lines(type(status.config) == 'table' and status.config or {}, ''))
  vim.list_extend(lines, { '', '## Roots', '' })
  for _, r in ipairs(type(status.roots) == 'table' and status.roots or {}) do
    table.insert(
      lines,
      ('- %s: %s, %s files, %s bytes%s'):format(
        r.name,
        r.path,
        fmt_int(r.files),
        fmt_int(r.bytes),
        r.readOnly and ' (read-only)' or ''
      )
    )
  end
  local idx = status.index
  vim.list_extend(lines, { '', '## Index', '' })
  if type(idx) == 'table' then
    table.insert(
      lines,
      ('%s of %s files, %s definitions, %s'):format(
        fmt_int(idx.files),
        fmt_int(idx.totalFiles),
        fmt_int(idx.definitions),
        idx.complete and 'complete' or 'building'
      )
    )
  else
    table.insert(lines, 'not built yet')
  end
  vim.list_extend(lines, { '', '## Runs in flight', '' })
  local flying = type(status.runsInFlight) == 'table' and status.runsInFlight or {}
  if #flying == 0 then
    table.insert(lines, 'none')
  end
  for _, id in ipairs(flying) do
    table.insert(lines, '- ' .. id)
  end
  local usage = M.usage_lines(status.lastRunUsage)
  if #usage > 0 then
    vim.list_extend(lines, { '', '## Last run', '' })
    for _, u in ipairs(usage) do
      table.insert(lines, '- ' .. u)
    end
  end
  local buf = M.scratch('rlm://status', lines, 'markdown')
  M.open(buf, 'rlm status', config().window == 'float' and 'float' or nil)
  return buf
end

--- `text` shortened to its first `max_lines` lines, each at most `width` bytes.
local function clip(text, max_lines, width)
  local all = split_lines((text or ''):gsub('\n+$', ''))
  local out = {}
  for i, l in ipairs(all) do
    if i > max_lines then
      table.insert(out, ('… %d more lines'):format(#all - max_lines))
      break
    end
    if #l > width then
      l = l:sub(1, width) .. '…'
    end
    table.insert(out, l)
  end
  return out
end

local function one_line(text, width)
  local s = (text or ''):gsub('%s+', ' ')
  s = vim.trim(s)
  if #s > width then
    s = s:sub(1, width) .. '…'
  end
  return s
end

local function tokens(u)
  if type(u) ~= 'table' then
    return ''
  end
  return ('%s+%s tokens'):format(fmt_int(u.prompt_tokens), fmt_int(u.completion_tokens))
end

--- The trajectory of a run as a tree: the run, then each iteration with the root model's
--- messages, code cells (code and clipped output), sub-calls and child runs.
---@param run rlm.Run
---@return string[]
function M.trajectory_lines(run)
  local result = run.result or {}
  local max_out = config().output_lines or 12
  local lines = {
    ('run %s (%s): %s'):format(run.id, run.kind, one_line(run.title, 100)),
    '├─ ' .. M.summary(result),
  }
  if result.sandbox and result.sandbox ~= vim.NIL then
    table.insert(lines, '├─ sandbox ' .. tostring(result.sandbox))
  end
  local usage = M.usage_lines(result.usage)
  if #usage > 0 then
    table.insert(lines, '├─ usage')
    for _, u in ipairs(usage) do
      table.insert(lines, '│  ├─ ' .. u)
    end
  end
  local events = type(result.trajectory) == 'table' and result.trajectory or {}
  local iteration
  local function add(prefix, text)
    table.insert(lines, prefix .. text)
  end
  for _, e in ipairs(events) do
    if e.iteration and e.iteration ~= iteration then
      iteration = e.iteration
      add('├─ ', ('iteration %s'):format(fmt_int(iteration)))
    end
    local p = e.iteration and '│  ├─ ' or '├─ '
    local body = e.iteration and '│  │    ' or '│    '
    if e.type == 'run_start' then
      add(
        p,
        ('start: %s files, %s bytes; root %s, sub %s; at most %s turns'):format(
          fmt_int(e.files),
          fmt_int(e.bytes),
          tostring(e.root_model),
          tostring(e.sub_model),
          fmt_int(e.max_iterations)
        )
      )
      add(body, 'question: ' .. one_line(e.question, 200))
    elseif e.type == 'root_message' then
      local meta = {}
      if e.usage and e.usage ~= vim.NIL then
        table.insert(meta, tokens(e.usage))
      end
      if e.latency_ms and e.latency_ms ~= vim.NIL then
        table.insert(meta, fmt_int(e.latency_ms) .. ' ms')
      end
      add(
        p,
        ('%s message%s'):format(tostring(e.role), #meta > 0 and (' (' .. table.concat(meta, ', ') .. ')') or '')
      )
      -- The system prompt is the same in every run: its first line is enough.
      for _, l in ipairs(clip(e.content, e.role == 'system' and 1 or max_out, 160)) do
        add(body, l)
      end
    elseif e.type == 'code_cell' then
      local flags = {}
      if e.timed_out then
        table.insert(flags, 'timed out')
      end
      if e.error and e.error ~= vim.NIL then
        table.insert(flags, 'error')
      end
      add(
        p,
        ('code cell %s (%s ms, %s bytes of output%s)'):format(
          fmt_int((e.index or 0) + 1),
          fmt_int(e.duration_ms),
          fmt_int(e.output_bytes),
          #flags > 0 and (', ' .. table.concat(flags, ', ')) or ''
        )
      )
      for _, l in ipairs(clip(e.code, max_out, 160)) do
        add(body, '» ' .. l)
      end
      local out = (e.stdout or '') .. (e.stderr or '')
      if out ~= '' then
        add(body, 'output:')
        for _, l in ipairs(clip(out, max_out, 160)) do
          add(body, '  ' .. l)
        end
      end
      if e.error and e.error ~= vim.NIL then
        add(body, 'error: ' .. one_line(e.error, 200))
      end
      if e.final_answer and e.final_answer ~= vim.NIL then
        add(body, 'FINAL: ' .. one_line(e.final_answer, 200))
      end
    elseif e.type == 'sub_call' then
      add(
        p,
        ('sub-call %s (%s, %s ms%s)'):format(
          tostring(e.model),
          tokens(e.usage),
          fmt_int(e.latency_ms),
          e.cached and ', cached' or ''
        )
      )
      add(body, 'prompt: ' .. one_line(e.prompt, 160))
      if e.response and e.response ~= vim.NIL then
        add(body, 'response: ' .. one_line(e.response, 160))
      else
        add(body, 'error: ' .. one_line(tostring(e.error), 160))
      end
    elseif e.type == 'child_run' then
      add(
        p,
        ('child run at depth %s (%s turns, %s, %s ms)'):format(
          fmt_int(e.depth),
          fmt_int(e.iterations),
          tostring(e.stop_reason),
          fmt_int(e.wall_ms)
        )
      )
      add(body, 'prompt: ' .. one_line(e.prompt, 160))
      add(body, 'answer: ' .. one_line(e.answer ~= vim.NIL and e.answer or e.error, 160))
    elseif e.type == 'run_end' then
      iteration = nil
      add(
        '└─ ',
        ('end: %s after %s turns, %s sub-calls, %s ms%s'):format(
          tostring(e.stop_reason),
          fmt_int(e.iterations),
          fmt_int(e.sub_calls),
          fmt_int(e.wall_ms),
          e.best_effort and ' (partial answer)' or ''
        )
      )
      add('     ', 'answer: ' .. one_line(e.answer, 200))
    else
      add(p, tostring(e.type))
    end
  end
  if #events == 0 then
    table.insert(lines, '└─ (no trajectory in the result)')
  end
  return lines
end

--- `:RlmTrajectory`
function M.show_trajectory(run)
  local buf = M.scratch('rlm://trajectory', M.trajectory_lines(run), 'rlmtrajectory')
  M.open(buf, 'rlm trajectory ' .. run.id)
  return buf
end

return M
