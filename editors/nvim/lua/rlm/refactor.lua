-- :RlmRefactor: rlm.planRefactor, the plan in a buffer, a unified diff per file computed here from
-- the current text and the WorkspaceEdit, then apply or discard.

local M = {}

local function rlm()
  return require('rlm')
end

--- The buffer that holds `fname`, when it is loaded.
local function loaded_buf(fname)
  local buf = vim.fn.bufnr(fname)
  if buf ~= -1 and vim.api.nvim_buf_is_loaded(buf) then
    return buf
  end
end

--- The current text of a file: its buffer when loaded (what apply_workspace_edit changes), else
--- the file on disk.
---@param fname string
---@return string? text, string? err
function M.current_text(fname)
  local buf = loaded_buf(fname)
  if buf then
    local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
    local eol = (vim.bo[buf].eol or vim.bo[buf].fixeol) and #lines > 0
    return table.concat(lines, '\n') .. (eol and '\n' or '')
  end
  local f, err = io.open(fname, 'rb')
  if not f then
    return nil, err
  end
  local text = f:read('*a')
  f:close()
  return text
end

--- `text` with the LSP TextEdits applied (positions in `encoding`: utf-8, utf-16 or utf-32).
---@param text string
---@param edits lsp.TextEdit[]
---@param encoding string
---@return string
function M.apply_text_edits(text, edits, encoding)
  local starts = { 1 } -- byte index of each line's first byte (1-based)
  for i in text:gmatch('()\n') do
    table.insert(starts, i + 1)
  end
  local function offset(pos)
    local l = pos.line + 1
    if l > #starts then
      return #text + 1
    end
    local line_end = (starts[l + 1] and starts[l + 1] - 1) or (#text + 1)
    local line = text:sub(starts[l], line_end - 1)
    local ok, col = pcall(vim.str_byteindex, line, encoding, pos.character, false)
    if not ok then
      col = #line
    end
    return starts[l] + math.min(col, #line)
  end
  local list = {}
  for i, e in ipairs(edits) do
    table.insert(list, { s = offset(e.range.start), e = offset(e.range['end']), text = e.newText, i = i })
  end
  -- From the end, so earlier offsets stay valid; edits at one position keep their order.
  table.sort(list, function(a, b)
    if a.s ~= b.s then
      return a.s > b.s
    end
    return a.i > b.i
  end)
  for _, e in ipairs(list) do
    text = text:sub(1, e.s - 1) .. e.text .. text:sub(e.e)
  end
  return text
end

--- The edits of a WorkspaceEdit by file URI (`changes` and `documentChanges`).
---@param edit lsp.WorkspaceEdit
---@return table<string, lsp.TextEdit[]>
function M.edits_by_uri(edit)
  local out = {}
  for uri, edits in pairs(type(edit) == 'table' and type(edit.changes) == 'table' and edit.changes or {}) do
    out[uri] = vim.list_extend(out[uri] or {}, edits)
  end
  for _, dc in ipairs(type(edit) == 'table' and type(edit.documentChanges) == 'table' and edit.documentChanges or {}) do
    if dc.textDocument and dc.edits then
      out[dc.textDocument.uri] = vim.list_extend(out[dc.textDocument.uri] or {}, dc.edits)
    end
  end
  return out
end

--- The preview: per file, its text now and after the edit, and a unified diff.
---@return {fname: string, rel: string, before: string, after: string, diff: string, edits: integer}[]
function M.preview_files(edit, encoding)
  local files = {}
  for uri, edits in pairs(M.edits_by_uri(edit)) do
    local fname = vim.uri_to_fname(uri)
    local before, err = M.current_text(fname)
    local rel = vim.fn.fnamemodify(fname, ':~:.')
    if before then
      local after = M.apply_text_edits(before, edits, encoding)
      local diff = vim.diff(before, after, { result_type = 'unified', ctxlen = 3 })
      table.insert(files, {
        fname = fname,
        rel = rel,
        before = before,
        after = after,
        diff = ('--- a/%s\n+++ b/%s\n%s'):format(rel, rel, diff),
        edits = #edits,
      })
    else
      table.insert(files, { fname = fname, rel = rel, diff = ('# %s: cannot read (%s)\n'):format(rel, err), edits = #edits })
    end
  end
  table.sort(files, function(a, b)
    return a.rel < b.rel
  end)
  return files
end

--- Runs rlm.planRefactor for `instruction` (at the cursor, or on the given lines) and previews it.
---@param instruction string
---@param range? {line1: integer, line2: integer}
function M.plan(instruction, range)
  local arg = { instruction = instruction, apply = false }
  local buf = vim.api.nvim_get_current_buf()
  if vim.bo[buf].buftype == '' and vim.api.nvim_buf_get_name(buf) ~= '' then
    arg.uri = vim.uri_from_bufnr(buf)
    if range then
      local last = vim.api.nvim_buf_get_lines(buf, range.line2 - 1, range.line2, false)[1] or ''
      arg.range = {
        start = { line = range.line1 - 1, character = 0 },
        ['end'] = { line = range.line2 - 1, character = vim.str_utfindex(last, 'utf-16') },
      }
    else
      local line = vim.api.nvim_win_get_cursor(0)[1] - 1
      arg.range = { start = { line = line, character = 0 }, ['end'] = { line = line, character = 0 } }
    end
  end
  rlm().start_run('refactor', 'rlm.planRefactor', arg, 'Refactor: ' .. instruction, function(result, run)
    M.show(result, run)
  end)
end

local function set_keys(buf)
  local opts = function(desc)
    return { buffer = buf, nowait = true, desc = desc }
  end
  vim.keymap.set('n', 'a', function()
    M.apply()
  end, opts('rlm: apply the refactor'))
  vim.keymap.set('n', 'd', function()
    M.discard()
  end, opts('rlm: discard the refactor'))
  vim.keymap.set('n', 'q', function()
    M.discard()
  end, opts('rlm: discard the refactor'))
end

--- The verdict of the user's check command (`checkCommand`) on the plan, as Markdown lines.
function M.check_lines(check)
  if type(check) ~= 'table' then
    return {}
  end
  if check.passed then
    return { '', ('**Check passed**: `%s` succeeds with these edits applied.'):format(check.command) }
  end
  local why = check.timedOut and 'ran out of time' or ('exit code %s'):format(tostring(check.exitCode or '?'))
  local lines = { '', ('**Check failed**: `%s` (%s) with these edits applied.'):format(check.command, why), '', '```text' }
  vim.list_extend(lines, vim.split(vim.trim(check.outputTail or ''), '\n', { plain = true }))
  table.insert(lines, '```')
  return lines
end

--- Shows the plan and the preview in a new tab: the plan above, the diff below.
function M.show(result, run)
  local ui = require('rlm.ui')
  local client = vim.lsp.get_client_by_id(run.client_id)
  local encoding = client and client.offset_encoding or 'utf-16'
  M.discard(true)
  local files = M.preview_files(result.edit, encoding)
  local n_edits = 0
  for _, f in ipairs(files) do
    n_edits = n_edits + f.edits
  end
  local plan = { '# ' .. run.title:gsub('\n', ' '), '' }
  vim.list_extend(plan, vim.split(result.plan or result.answer or '', '\n', { plain = true }))
  vim.list_extend(plan, M.check_lines(result.check))
  vim.list_extend(plan, { '', '---', ('%s · %s'):format(run.id, ui.summary(result)) })
  if n_edits > 0 then
    table.insert(plan, ('%d edit%s in %d file%s: `a` applies (:RlmRefactorApply), `d` or `q` discards (:RlmRefactorDiscard)'):format(
      n_edits,
      n_edits == 1 and '' or 's',
      #files,
      #files == 1 and '' or 's'
    ))
  else
    table.insert(plan, 'No edit passed the checks: nothing to apply. `q` closes.')
  end
  local diff = {}
  for _, f in ipairs(files) do
    vim.list_extend(diff, vim.split(vim.trim(f.diff), '\n', { plain = true }))
  end
  if #diff == 0 then
    diff = { '# no edits' }
  end
  local plan_buf = ui.scratch('rlm://refactor/plan', plan, 'markdown')
  local preview_buf = ui.scratch('rlm://refactor/preview', diff, 'diff')
  set_keys(plan_buf)
  set_keys(preview_buf)
  vim.cmd('tabnew')
  local empty = vim.api.nvim_get_current_buf()
  vim.api.nvim_win_set_buf(0, plan_buf)
  pcall(vim.api.nvim_buf_delete, empty, {})
  vim.wo.wrap = true
  vim.wo.linebreak = true
  vim.cmd('belowright split')
  vim.api.nvim_win_set_buf(0, preview_buf)
  vim.wo.wrap = false
  rlm().state.refactor = {
    run = run,
    result = result,
    edit = result.edit,
    files = files,
    edits = n_edits,
    encoding = encoding,
    client_id = run.client_id,
    plan_buf = plan_buf,
    preview_buf = preview_buf,
    tab = vim.api.nvim_get_current_tabpage(),
  }
end

local function close_ui(r)
  if r.tab and vim.api.nvim_tabpage_is_valid(r.tab) then
    if #vim.api.nvim_list_tabpages() > 1 then
      local nr = vim.api.nvim_tabpage_get_number(r.tab)
      pcall(vim.cmd, 'tabclose ' .. nr)
    end
  end
  for _, b in ipairs({ r.plan_buf, r.preview_buf }) do
    if b and vim.api.nvim_buf_is_valid(b) then
      pcall(vim.api.nvim_buf_delete, b, { force = true })
    end
  end
end

--- Applies the previewed refactor (`:RlmRefactorApply[!]`). Refused when a file changed since
--- the preview, unless `force`.
---@param force? boolean
---@return boolean applied
function M.apply(force)
  local r = rlm().state.refactor
  if not r then
    rlm().notify('no refactor plan to apply (:RlmRefactor first)', vim.log.levels.WARN)
    return false
  end
  if r.edits == 0 then
    rlm().notify('the plan has no edits to apply', vim.log.levels.WARN)
    return false
  end
  if not force then
    for _, f in ipairs(r.files) do
      if f.before and M.current_text(f.fname) ~= f.before then
        rlm().notify(
          ('%s changed since the preview: run :RlmRefactor again, or :RlmRefactorApply! to apply anyway'):format(
            f.rel
          ),
          vim.log.levels.ERROR
        )
        return false
      end
    end
  end
  local ok, err = pcall(vim.lsp.util.apply_workspace_edit, r.edit, r.encoding)
  if not ok then
    rlm().notify('applying the edit failed: ' .. tostring(err), vim.log.levels.ERROR)
    return false
  end
  rlm().state.refactor = nil
  r.applied = true
  rlm().state.last_refactor = r
  close_ui(r)
  rlm().notify(
    ('applied %d edit%s in %d file%s (buffers modified, not written: :wall saves them)'):format(
      r.edits,
      r.edits == 1 and '' or 's',
      #r.files,
      #r.files == 1 and '' or 's'
    )
  )
  return true
end

--- Drops the previewed refactor (`:RlmRefactorDiscard`).
---@param quiet? boolean
function M.discard(quiet)
  local r = rlm().state.refactor
  if not r then
    if not quiet then
      rlm().notify('no refactor plan to discard', vim.log.levels.WARN)
    end
    return
  end
  rlm().state.refactor = nil
  r.applied = false
  rlm().state.last_refactor = r
  close_ui(r)
  if not quiet then
    rlm().notify('refactor discarded')
  end
end

return M
