-- rlm.nvim commands. The language server itself starts only when you enable it:
-- `vim.lsp.enable('rlm')` or `require('rlm').setup({...})` (see editors/nvim/README.md).
if vim.g.loaded_rlm then
  return
end
vim.g.loaded_rlm = true

if vim.fn.has('nvim-0.11') == 0 then
  vim.notify('rlm.nvim needs Neovim 0.11 or newer', vim.log.levels.ERROR)
  return
end

-- Progress of rlm-lsp runs (also those started by code actions), for require('rlm').statusline().
vim.api.nvim_create_autocmd('LspProgress', {
  group = vim.api.nvim_create_augroup('rlm.progress', { clear = true }),
  callback = function(ev)
    local client = ev.data and vim.lsp.get_client_by_id(ev.data.client_id)
    if client and client.name == 'rlm' then
      require('rlm')._on_progress(ev)
    end
  end,
})

local function cmd(name, fn, opts)
  vim.api.nvim_create_user_command(name, fn, opts)
end

cmd('RlmAsk', function(a)
  require('rlm').ask(a.args)
end, { nargs = '*', desc = 'rlm: ask a question about the workspace' })

cmd('RlmExplain', function()
  require('rlm').explain()
end, { nargs = 0, desc = 'rlm: explain the symbol under the cursor' })

cmd('RlmRefactor', function(a)
  local range = a.range > 0 and { line1 = a.line1, line2 = a.line2 } or nil
  require('rlm').refactor(a.args, range)
end, { nargs = '*', range = true, desc = 'rlm: plan a refactor, preview it, then apply or discard' })

cmd('RlmRefactorApply', function(a)
  require('rlm.refactor').apply(a.bang)
end, { nargs = 0, bang = true, desc = 'rlm: apply the previewed refactor (! even if files changed)' })

cmd('RlmRefactorDiscard', function()
  require('rlm.refactor').discard()
end, { nargs = 0, desc = 'rlm: discard the previewed refactor' })

cmd('RlmCancel', function(a)
  require('rlm').cancel(a.args ~= '' and a.args or nil)
end, {
  nargs = '?',
  desc = 'rlm: cancel the runs in flight (or the one named)',
  complete = function()
    return vim.tbl_map(function(r)
      return r.id
    end, require('rlm').running())
  end,
})

cmd('RlmStatus', function()
  require('rlm').status()
end, { nargs = 0, desc = 'rlm: show the server status' })

cmd('RlmTrajectory', function()
  require('rlm').trajectory()
end, { nargs = 0, desc = "rlm: show the last run's trajectory" })
