-- rlm.nvim: ask questions of a whole codebase with rlm-lsp (Recursive Language Models).
--
-- The language server is configured by `lsp/rlm.lua` (`vim.lsp.config('rlm', {...})`); this
-- module runs its commands (docs/protocol.md) and keeps the state the commands, the statusline
-- and the tests read.

local M = {}

---@class rlm.Config
---@field cmd? string[]|fun(...): vim.lsp.rpc.PublicClient  the server command (default {'rlm-lsp', 'serve'})
---@field settings? table  initializationOptions: baseUrl, model, apiKeyEnv, ... (docs/protocol.md)
---@field enable? boolean  call vim.lsp.enable('rlm') (default true)
---@field window? 'float'|'split'|'vsplit'|'tab'  where answers open (default 'float')
---@field float? {width: number, height: number, border: string}  float size (fractions of the editor)
---@field output_lines? integer  lines of a code cell's output kept in :RlmTrajectory (default 12)

---@type rlm.Config
M.defaults = {
  enable = true,
  window = 'float',
  float = { width = 0.8, height = 0.8, border = 'rounded' },
  output_lines = 12,
}

---@type rlm.Config
M.config = vim.deepcopy(M.defaults)

--- What the plugin knows of the runs it started: read by the commands, `statusline()` and tests.
M.state = {
  ---@type table<string, rlm.Run> runs by id
  runs = {},
  ---@type rlm.Run? the most recent run
  last = nil,
  ---@type rlm.Run? the most recent run that finished with a result (for :RlmTrajectory)
  last_result = nil,
  --- Progress of the rlm client(s), by token: {title, message, percentage, done}
  progress = {},
  --- The refactor plan waiting for apply or discard (see rlm.refactor)
  refactor = nil,
  --- The last rlm.status result
  status = nil,
}

---@class rlm.Run
---@field id string
---@field kind 'ask'|'explain'|'refactor'
---@field title string
---@field token string  the workDoneToken of its request
---@field client_id integer
---@field request_id integer?
---@field status 'running'|'done'|'failed'|'cancelled'
---@field started number  vim.uv.now() at start
---@field finished number?
---@field message string?  the last progress message
---@field percentage integer?
---@field result table?
---@field error string?

local n_runs = 0

--- `require('rlm').setup({...})`: explicit set-up. Passes `cmd` and `settings` (as
--- initializationOptions) to `vim.lsp.config('rlm', ...)` and enables the server unless
--- `enable = false`. Calling `vim.lsp.config` / `vim.lsp.enable` yourself works as well.
---@param opts? rlm.Config
function M.setup(opts)
  opts = opts or {}
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  local lsp = {}
  if opts.cmd then
    lsp.cmd = opts.cmd
  end
  if opts.settings then
    lsp.init_options = opts.settings
  end
  if next(lsp) then
    vim.lsp.config('rlm', lsp)
  end
  if M.config.enable ~= false then
    vim.lsp.enable('rlm')
  end
end

local function notify(msg, level)
  vim.notify('rlm: ' .. msg, level or vim.log.levels.INFO)
end
M.notify = notify

--- The rlm client for a buffer (else any running rlm client).
---@param bufnr? integer
---@return vim.lsp.Client?
function M.get_client(bufnr)
  local clients = vim.lsp.get_clients({ name = 'rlm', bufnr = bufnr or 0 })
  if #clients == 0 then
    clients = vim.lsp.get_clients({ name = 'rlm' })
  end
  return clients[1]
end

--- Calls `fn(client)` once an rlm client is initialized (waiting up to 15 s for one that is
--- starting); reports an error otherwise.
---@param fn fun(client: vim.lsp.Client)
function M.with_client(fn)
  local deadline = vim.uv.now() + 15000
  local started = false
  local function try()
    local client = M.get_client()
    if client and client.initialized then
      return fn(client)
    end
    local starting = #vim.lsp.get_clients({ name = 'rlm', _uninitialized = true }) > 0
    if not client and not starting and started then
      return notify('rlm-lsp exited while starting (:checkhealth rlm, :LspLog)', vim.log.levels.ERROR)
    end
    if not client and not starting and not M.start() then
      return notify(
        'rlm-lsp is not running. Enable it with vim.lsp.enable("rlm") or require("rlm").setup() '
          .. 'and open a file of the workspace (:checkhealth rlm)',
        vim.log.levels.ERROR
      )
    end
    started = true
    if vim.uv.now() > deadline then
      return notify('rlm-lsp did not finish initializing in 15 s (:checkhealth rlm)', vim.log.levels.ERROR)
    end
    vim.defer_fn(try, 50)
  end
  try()
end

--- Starts rlm-lsp when it is enabled but not running (no file of the workspace open yet): the
--- root is found from the current buffer, else the current directory. Returns the client id.
---@return integer?
function M.start()
  if not (vim.lsp.is_enabled and vim.lsp.is_enabled('rlm')) then
    return nil
  end
  local ok, cfg = pcall(function()
    return vim.deepcopy(vim.lsp.config.rlm)
  end)
  if not ok or not cfg then
    return nil
  end
  local buf = vim.api.nvim_get_current_buf()
  local is_file = vim.bo[buf].buftype == '' and vim.api.nvim_buf_get_name(buf) ~= ''
  if type(cfg.root_dir) ~= 'string' then
    cfg.root_dir = vim.fs.root(buf, cfg.root_markers or { '.git' }) or vim.fn.getcwd()
  end
  return vim.lsp.start(cfg, { bufnr = buf, attach = is_file })
end

---@param run rlm.Run
local function finish(run, status, fields)
  if run.status ~= 'running' then
    return false
  end
  run.status = status
  run.finished = vim.uv.now()
  for k, v in pairs(fields or {}) do
    run[k] = v
  end
  vim.cmd.redrawstatus({ bang = true })
  vim.api.nvim_exec_autocmds('User', { pattern = 'RlmRunDone', modeline = false, data = { id = run.id } })
  return true
end

--- Runs an rlm command that starts an RLM run (rlm.ask, rlm.explain, rlm.planRefactor) with
--- work-done progress; `on_result(result, run)` gets the result.
---@param kind 'ask'|'explain'|'refactor'
---@param command string
---@param arg table
---@param title string
---@param on_result fun(result: table, run: rlm.Run)
function M.start_run(kind, command, arg, title, on_result)
  M.with_client(function(client)
    n_runs = n_runs + 1
    local id = ('nvim-%d-%d'):format(vim.fn.getpid(), n_runs)
    -- Every run command takes an id, so :RlmCancel can name the run (rlm.cancel).
    arg.id = id
    ---@type rlm.Run
    local run = {
      id = id,
      kind = kind,
      title = title,
      token = 'rlm.nvim/' .. id,
      client_id = client.id,
      status = 'running',
      started = vim.uv.now(),
      message = 'starting',
    }
    M.state.runs[id] = run
    M.state.last = run
    local params = { command = command, arguments = { arg }, workDoneToken = run.token }
    local ok, request_id = client:request('workspace/executeCommand', params, function(err, result)
      if err then
        local msg = type(err) == 'table' and err.message or tostring(err)
        if finish(run, 'failed', { error = msg }) then
          notify(('%s failed: %s'):format(kind, msg), vim.log.levels.ERROR)
        end
        return
      end
      if not finish(run, 'done', { result = result }) then
        return -- cancelled meanwhile: the answer is not wanted
      end
      M.state.last_result = run
      on_result(result or {}, run)
    end)
    if not ok then
      finish(run, 'failed', { error = 'the request could not be sent (the server has stopped?)' })
      return notify(run.error, vim.log.levels.ERROR)
    end
    run.request_id = request_id
    vim.cmd.redrawstatus({ bang = true })
  end)
end

--- The runs of this Neovim still in flight, oldest first.
---@return rlm.Run[]
function M.running()
  local out = {}
  for _, run in pairs(M.state.runs) do
    local client = run.status == 'running' and vim.lsp.get_client_by_id(run.client_id)
    if run.status == 'running' and (not client or client:is_stopped()) then
      finish(run, 'failed', { error = 'rlm-lsp stopped during the run' })
    end
    if run.status == 'running' then
      table.insert(out, run)
    end
  end
  table.sort(out, function(a, b)
    return a.started < b.started
  end)
  return out
end

--- Cancels the run `id`, or every run in flight when `id` is nil, with `rlm.cancel {id}` (or
--- `$/cancelRequest` when the server does not know the run yet); the server aborts the run and
--- the request fails with RequestCancelled, which Neovim does not pass on, so the run is marked
--- cancelled here.
---@param id? string
---@param on_done? fun(cancelled: rlm.Run[])
function M.cancel(id, on_done)
  local targets = {}
  for _, run in ipairs(M.running()) do
    if not id or id == '' or run.id == id then
      table.insert(targets, run)
    end
  end
  if #targets == 0 then
    notify(id and id ~= '' and ('no run %s in flight'):format(id) or 'no run in flight')
    if on_done then
      on_done({})
    end
    return
  end
  local pending = #targets
  local function one_done()
    pending = pending - 1
    if pending == 0 then
      notify(('cancelled %s'):format(table.concat(
        vim.tbl_map(function(r)
          return r.id
        end, targets),
        ', '
      )))
      if on_done then
        on_done(targets)
      end
    end
  end
  for _, run in ipairs(targets) do
    local client = vim.lsp.get_client_by_id(run.client_id)
    if not client then
      finish(run, 'cancelled')
      one_done()
    else
      client:request('workspace/executeCommand', {
        command = 'rlm.cancel',
        arguments = { { id = run.id } },
      }, function(err, result)
        if err or not (result and result.cancelled) then
          -- Not registered (yet, or any more): drop the request itself.
          if run.request_id then
            client:cancel_request(run.request_id)
          end
        end
        finish(run, 'cancelled')
        one_done()
      end)
    end
  end
end

--- A statusline component: the run in flight and its latest progress, else ''.
--- `vim.o.statusline = '%f %= %{v:lua.require("rlm").statusline()}'`
---@return string
function M.statusline()
  local runs = M.running()
  local run = runs[#runs]
  if not run then
    -- A run this plugin did not start (a code action): its progress alone.
    for token, p in pairs(M.state.progress) do
      if not p.done and not token:find('^rlm%.nvim/') then
        local text = ('rlm: %s%s'):format(p.message or p.title or '', p.percentage and (' %d%%'):format(p.percentage) or '')
        return (text:gsub('%%', '%%%%'))
      end
    end
    return ''
  end
  local secs = math.floor((vim.uv.now() - run.started) / 1000)
  local parts = { 'rlm' }
  if #runs > 1 then
    table.insert(parts, ('(%d runs)'):format(#runs))
  end
  table.insert(parts, run.kind .. ':')
  if run.message and run.message ~= '' then
    table.insert(parts, run.message)
  end
  if run.percentage then
    table.insert(parts, ('%d%%'):format(run.percentage))
  end
  table.insert(parts, ('%ds'):format(secs))
  return (table.concat(parts, ' '):gsub('%%', '%%%%'))
end

--- LspProgress: keeps the progress of rlm's tokens, and of the runs started here.
local function on_progress(ev)
  local data = ev.data or {}
  local client = data.client_id and vim.lsp.get_client_by_id(data.client_id)
  if not client or client.name ~= 'rlm' then
    return
  end
  local params = data.params or {}
  local value = params.value
  if type(value) ~= 'table' or params.token == nil then
    return
  end
  local token = tostring(params.token)
  local p = M.state.progress[token] or {}
  M.state.progress[token] = p
  p.title = value.title or p.title
  p.message = value.message or p.message
  p.percentage = value.percentage or p.percentage
  p.done = value.kind == 'end'
  for _, run in pairs(M.state.runs) do
    if run.token == token then
      run.message = value.message or run.message
      run.percentage = value.percentage or run.percentage
      if value.kind == 'end' then
        run.ended = value.message or ''
      end
      if value.kind == 'end' and value.message == 'cancelled' then
        finish(run, 'cancelled')
      end
    end
  end
  vim.cmd.redrawstatus({ bang = true })
end

M._on_progress = on_progress
-- plugin/rlm.lua registers the same autocmd at start-up; this one replaces it (same group).
local group = vim.api.nvim_create_augroup('rlm.progress', { clear = true })
vim.api.nvim_create_autocmd('LspProgress', { group = group, callback = on_progress })

-- Commands ----------------------------------------------------------------------------------

local function prompt(text, value, fn)
  if value and vim.trim(value) ~= '' then
    return fn(vim.trim(value))
  end
  vim.ui.input({ prompt = text }, function(input)
    if input and vim.trim(input) ~= '' then
      fn(vim.trim(input))
    end
  end)
end

--- `:RlmAsk [question]`
---@param question? string
function M.ask(question)
  prompt('rlm ask: ', question, function(q)
    require('rlm.ui').remember_origin()
    M.start_run('ask', 'rlm.ask', { question = q }, q, function(result, run)
      require('rlm.ui').show_answer(result, run)
    end)
  end)
end

--- `:RlmExplain`: the symbol under the cursor.
function M.explain()
  local buf = vim.api.nvim_get_current_buf()
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local word = vim.fn.expand('<cword>')
  if vim.bo[buf].buftype ~= '' or vim.api.nvim_buf_get_name(buf) == '' then
    return notify(':RlmExplain works on a file of the workspace', vim.log.levels.WARN)
  end
  require('rlm.ui').remember_origin()
  M.with_client(function(client)
    local line = vim.api.nvim_buf_get_lines(buf, row - 1, row, false)[1] or ''
    local character = vim.str_utfindex(line, client.offset_encoding or 'utf-16', math.min(col, #line), false)
    M.start_run(
      'explain',
      'rlm.explain',
      { uri = vim.uri_from_bufnr(buf), position = { line = row - 1, character = character } },
      ('Explain `%s`'):format(word),
      function(result, run)
        if result.symbol then
          run.title = ('Explain `%s`'):format(result.symbol)
        end
        require('rlm.ui').show_answer(result, run)
      end
    )
  end)
end

--- `:RlmRefactor [instruction]` (with a range: the selected lines).
---@param instruction? string
---@param range? {line1: integer, line2: integer}
function M.refactor(instruction, range)
  prompt('rlm refactor: ', instruction, function(text)
    require('rlm.refactor').plan(text, range)
  end)
end

--- `:RlmStatus`
function M.status()
  M.with_client(function(client)
    client:request('workspace/executeCommand', { command = 'rlm.status', arguments = {} }, function(err, result)
      if err then
        return notify('rlm.status failed: ' .. (err.message or tostring(err)), vim.log.levels.ERROR)
      end
      M.state.status = result
      require('rlm.ui').show_status(result, client)
    end)
  end)
end

--- `:RlmTrajectory`: the last finished run's trajectory as a tree.
function M.trajectory()
  local run = M.state.last_result
  if not run or not run.result then
    return notify('no finished run yet', vim.log.levels.WARN)
  end
  require('rlm.ui').show_trajectory(run)
end

return M
