-- The rlm-lsp language server, for `vim.lsp.config('rlm', {...})` and `vim.lsp.enable('rlm')`
-- (Neovim 0.11+). Nothing here downloads anything: `rlm-lsp` must be on PATH, or `cmd` must name
-- the binary (see editors/nvim/README.md).
--
-- rlm-lsp answers questions about the whole workspace, whatever the language, so it has no
-- `filetypes`: it attaches to every buffer that is a file.

---@type vim.lsp.Config
return {
  cmd = { 'rlm-lsp', 'serve' },
  -- The workspace is the repository: a VCS root first, else the nearest project file.
  root_markers = {
    { '.git', '.hg', '.jj' },
    { 'Cargo.toml', 'package.json', 'pyproject.toml', 'go.mod', 'Makefile' },
  },
  -- Model settings go in `init_options` (`baseUrl`, `model`, `apiKeyEnv`, ...: see
  -- docs/protocol.md), e.g. through `require('rlm').setup({ settings = {...} })`. Left out, the
  -- server reads the `RLM_*` environment, else starts the local model on demand.
}
