-- :checkhealth rlm: the binary and its version, CPython 3.11's shared library, the REPL sandbox,
-- the model endpoint, and the running server.

local M = {}

local health = vim.health

--- The effective server config: `vim.lsp.config.rlm` (lsp/rlm.lua merged with the user's).
local function lsp_config()
  local ok, cfg = pcall(function()
    return vim.lsp.config.rlm
  end)
  return ok and cfg or {}
end

--- The model settings: those of a running client, else the configured init_options.
local function settings()
  local client = require('rlm').get_client()
  local s = client and client.config.init_options or lsp_config().init_options
  return type(s) == 'table' and s or {}
end

local function run(cmd, timeout_ms, stdin)
  local ok, obj = pcall(vim.system, cmd, { text = true, stdin = stdin })
  if not ok then
    return { code = -1, stdout = '', stderr = tostring(obj) }
  end
  local res = obj:wait(timeout_ms or 5000)
  if res.signal and res.signal ~= 0 and res.code == 0 then
    res.code = -1
  end
  return res
end

local function first_line(s)
  return vim.trim(vim.split(s or '', '\n', { plain = true })[1] or '')
end

---@return string? path
local function check_binary()
  health.start('rlm-lsp binary')
  local cmd = lsp_config().cmd
  if type(cmd) == 'function' then
    health.info('`cmd` is a function (a custom transport): the binary cannot be checked here')
    return nil
  end
  local name = type(cmd) == 'table' and cmd[1] or 'rlm-lsp'
  local path = vim.fn.exepath(name)
  if path == '' then
    health.error(
      ('`%s` not found (cmd = %s)'):format(name, vim.inspect(cmd)),
      {
        'Build it (`cargo build --release` in the rlm-lsp repository, or scripts/setup.sh) and put it on PATH',
        "or set the path: require('rlm').setup({ cmd = { '/path/to/rlm-lsp', 'serve' } })",
      }
    )
    return nil
  end
  health.ok(('binary: %s (cmd = %s)'):format(path, table.concat(cmd or { name }, ' ')))
  local res = run({ path, '--version' }, 10000)
  if res.code == 0 and first_line(res.stdout) ~= '' then
    health.ok('version: ' .. first_line(res.stdout))
  else
    health.error(
      ('`%s --version` failed (exit %s): %s'):format(path, tostring(res.code), first_line(res.stderr)),
      { 'A missing libpython3.11 stops the binary from starting: see the next section' }
    )
  end
  return path
end

local function check_python(bin)
  health.start('Python (CPython 3.11, embedded)')
  if bin and vim.fn.executable('ldd') == 1 then
    local res = run({ 'ldd', bin }, 5000)
    for _, l in ipairs(vim.split(res.stdout or '', '\n', { plain = true })) do
      if l:find('libpython', 1, true) then
        local lib, target = l:match('^%s*(%S+)%s*=>%s*(.-)%s*$')
        if target and target:find('not found', 1, true) then
          health.error(('%s: not found'):format(lib), {
            'Install Python 3.11 with its shared library (Debian/Ubuntu: apt install libpython3.11)',
            'or add its directory to LD_LIBRARY_PATH',
          })
          return
        elseif lib then
          health.ok(('%s => %s'):format(lib, (target:gsub('%s*%(0x%x+%)$', ''))))
          return
        end
      end
    end
    if res.code == 0 then
      health.info('the binary does not link libpython dynamically')
      return
    end
  end
  local py = vim.fn.exepath('python3.11')
  if py == '' then
    health.warn('python3.11 not found, and the binary could not be inspected with ldd', {
      'rlm-lsp embeds CPython 3.11: install python3.11 with libpython3.11',
    })
    return
  end
  local res = run({
    py,
    '-c',
    'import sysconfig,os;d=sysconfig.get_config_var("LIBDIR");l=sysconfig.get_config_var("LDLIBRARY");'
      .. 'p=os.path.join(d,l);print(p if os.path.exists(p) else "")',
  }, 5000)
  local lib = first_line(res.stdout)
  if lib ~= '' and lib:find('%.so') then
    health.ok(('%s (from %s)'):format(lib, py))
  else
    health.warn(('%s has no shared libpython3.11'):format(py), { 'Install libpython3.11 (Debian/Ubuntu: apt install libpython3.11)' })
  end
end

--- The kernel's Landlock ABI version: 0 when missing or disabled, nil when unknown.
local function landlock_abi()
  if jit and jit.os ~= 'Linux' then
    return 0
  end
  local ok, ffi = pcall(require, 'ffi')
  if ok then
    pcall(ffi.cdef, 'long syscall(long number, ...);')
    -- landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): syscall 444 on every
    -- Linux architecture.
    local called, abi = pcall(function()
      return tonumber(ffi.C.syscall(ffi.cast('long', 444), ffi.cast('void *', nil), ffi.cast('size_t', 0), ffi.cast('unsigned int', 1)))
    end)
    if called then
      return math.max(abi or 0, 0)
    end
  end
  local f = io.open('/sys/kernel/security/lsm', 'r')
  if f then
    local lsm = f:read('*a') or ''
    f:close()
    return lsm:find('landlock', 1, true) and 1 or 0
  end
  return nil
end

local function check_sandbox()
  health.start('REPL sandbox (Landlock and seccomp)')
  local s = settings()
  local env = vim.env.RLM_UNSAFE_NO_SANDBOX
  if s.unsafeNoSandbox == true or (env and env ~= '' and env ~= '0' and env:lower() ~= 'false') then
    health.warn('the sandbox is turned off (unsafeNoSandbox / RLM_UNSAFE_NO_SANDBOX): model code runs with your rights')
  end
  local abi = landlock_abi()
  if abi and abi > 0 then
    health.ok(('Landlock available (ABI %d)'):format(abi))
  elseif abi == 0 then
    health.warn('Landlock is missing or disabled in this kernel: rlm-lsp refuses to run model code', {
      'Use a kernel with Landlock (Linux 5.13+, `lsm=...,landlock` on the kernel command line)',
      'or opt out knowingly with settings `unsafeNoSandbox = true` (RLM_UNSAFE_NO_SANDBOX=1)',
    })
  else
    health.warn('could not tell whether Landlock is available (/sys/kernel/security/lsm unreadable)')
  end
  local f = io.open('/proc/self/status', 'r')
  local status = f and f:read('*a') or ''
  if f then
    f:close()
  end
  if status:find('\nSeccomp:') then
    health.ok('seccomp available')
  else
    health.warn('seccomp is not reported by /proc/self/status: the sandbox may not start')
  end
end

local function check_model()
  health.start('Model endpoint')
  local s = settings()
  local base = s.baseUrl or vim.env.RLM_BASE_URL
  if not base or base == '' then
    health.info(
      'no baseUrl (settings) nor RLM_BASE_URL: the local model (llama-server with '
        .. 'Qwen2.5-Coder-1.5B) is started on demand by the first run'
    )
    local cache = (vim.env.XDG_CACHE_HOME or (vim.env.HOME or '') .. '/.cache') .. '/rlm-lsp'
    local llama = vim.env.RLM_LLAMA_SERVER or vim.fn.exepath('llama-server')
    if llama == '' then
      llama = vim.fn.glob(cache .. '/llama.cpp-*/bin/llama-server', false, true)[1] or ''
    end
    local gguf = vim.env.RLM_LOCAL_MODEL or (cache .. '/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf')
    if vim.uv.fs_stat(gguf) then
      health.ok('local model: ' .. gguf)
    else
      health.warn('local model not found: ' .. gguf, {
        'Run scripts/setup.sh in the rlm-lsp repository (RLM_LOCAL_MODEL names another file), or set baseUrl',
      })
    end
    if llama ~= '' then
      health.ok('llama-server: ' .. llama)
    else
      health.warn('llama-server not found (PATH, RLM_LLAMA_SERVER, the rlm-lsp cache)', {
        'Run scripts/setup.sh in the rlm-lsp repository, or set baseUrl to a model server',
      })
    end
    return
  end
  local url = base:gsub('/+$', '') .. '/models'
  local shown = url:gsub('//[^/@]*@', '//***@')
  local cmd = { 'curl', '-sS', '-m', '5', '-w', '\n%{http_code}' }
  local headers
  local key_env = s.apiKeyEnv or vim.env.RLM_API_KEY_ENV
  local key = key_env and key_env ~= '' and vim.env[key_env] or nil
  if key and key ~= '' then
    -- Headers from stdin, so the key is not on a command line.
    local anthropic = s.backend == 'anthropic' or (s.backend == nil and base:find('anthropic%.com'))
    headers = anthropic and ('x-api-key: %s\nanthropic-version: 2023-06-01\n'):format(key)
      or ('Authorization: Bearer %s\n'):format(key)
    vim.list_extend(cmd, { '-H', '@-' })
  end
  table.insert(cmd, url)
  if vim.fn.executable('curl') == 0 then
    health.warn('curl not found: cannot check ' .. shown)
    return
  end
  local res = run(cmd, 8000, headers)
  local out = vim.split(vim.trim(res.stdout or ''), '\n', { plain = true })
  local code = tonumber(out[#out])
  if res.code ~= 0 or not code or code == 0 then
    health.error(('%s is not reachable: %s'):format(shown, first_line(res.stderr) ~= '' and first_line(res.stderr) or ('exit ' .. tostring(res.code))), {
      'Start the model server, or fix baseUrl / RLM_BASE_URL',
    })
    return
  end
  if code == 200 then
    table.remove(out)
    local ok, body = pcall(vim.json.decode, table.concat(out, '\n'))
    local ids = {}
    if ok and type(body) == 'table' and type(body.data) == 'table' then
      for _, m in ipairs(body.data) do
        table.insert(ids, tostring(m.id))
      end
    end
    health.ok(('%s reachable: %d model%s%s'):format(shown, #ids, #ids == 1 and '' or 's', #ids > 0 and (' (' .. table.concat(vim.list_slice(ids, 1, 5), ', ') .. ')') or ''))
    if s.model and #ids > 0 and not vim.tbl_contains(ids, s.model) then
      health.warn(('the configured model %q is not in the list'):format(s.model))
    end
  elseif code == 401 or code == 403 then
    health.warn(('%s answered HTTP %d: the API key is missing or rejected'):format(shown, code), {
      'Set apiKeyEnv (RLM_API_KEY_ENV) to the name of the variable holding the key',
    })
  else
    health.warn(('%s answered HTTP %d'):format(shown, code))
  end
end

local function check_server()
  health.start('Server')
  local clients = vim.lsp.get_clients({ name = 'rlm' })
  if #clients == 0 then
    local enabled = vim.lsp.is_enabled and vim.lsp.is_enabled('rlm')
    health.info(
      enabled and 'enabled, not running: it starts with the first file buffer of a workspace'
        or "not enabled: call vim.lsp.enable('rlm') or require('rlm').setup({...})"
    )
    return
  end
  for _, client in ipairs(clients) do
    local res = client.initialized
      and client:request_sync('workspace/executeCommand', { command = 'rlm.status', arguments = {} }, 3000)
    local st = res and res.result
    if type(st) == 'table' then
      local idx = type(st.index) == 'table' and st.index or {}
      health.ok(
        ('client %d: rlm-lsp %s, root %s, %s files indexed%s'):format(
          client.id,
          tostring(st.version),
          client.root_dir or '(none)',
          tostring(idx.files or 0),
          idx.complete == false and ' (building)' or ''
        )
      )
    else
      health.warn(('client %d (root %s): rlm.status did not answer'):format(client.id, client.root_dir or '(none)'))
    end
  end
end

function M.check()
  health.start('Neovim')
  if vim.fn.has('nvim-0.11') == 1 then
    health.ok('Neovim ' .. tostring(vim.version()))
  else
    health.error('Neovim 0.11 or newer is needed')
  end
  local bin = check_binary()
  check_python(bin)
  check_sandbox()
  check_model()
  check_server()
end

return M
