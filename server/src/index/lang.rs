//! Languages: detection by file name, tree-sitter grammars and the project's own definition
//! queries (`queries/*.scm`), compiled once per process.

use super::{DefKind, Language};
use std::sync::OnceLock;
use tree_sitter::Query;

/// The language of a file, from its name (and, for `.h`, its text).
///
/// `.h` headers are C unless their text clearly is C++ (a `class`/`namespace`/`template` keyword at
/// the start of a line, an access specifier, or `::` qualification); see `h_is_cpp`.
pub fn language_for_path(path: &str, text: &str) -> Language {
    let file = path.rsplit('/').next().unwrap_or(path);
    match file {
        "Rakefile" | "Gemfile" | "Guardfile" | "Vagrantfile" | "Podfile" => {
            return Language::Ruby;
        }
        ".bashrc" | ".bash_profile" | ".profile" | "PKGBUILD" => return Language::Bash,
        _ => {}
    }
    let Some((_, ext)) = file.rsplit_once('.') else {
        return if text.starts_with("#!/bin/bash")
            || text.starts_with("#!/bin/sh")
            || text.starts_with("#!/usr/bin/env bash")
        {
            Language::Bash
        } else {
            Language::Text
        };
    };
    match ext.to_ascii_lowercase().as_str() {
        "rs" => Language::Rust,
        "py" | "pyi" | "pyw" => Language::Python,
        "js" | "mjs" | "cjs" | "jsx" => Language::Javascript,
        "ts" | "mts" | "cts" => Language::Typescript,
        "tsx" => Language::Tsx,
        "go" => Language::Go,
        "java" => Language::Java,
        "c" => Language::C,
        "h" => {
            if h_is_cpp(text) {
                Language::Cpp
            } else {
                Language::C
            }
        }
        "cc" | "cpp" | "cxx" | "c++" | "hpp" | "hh" | "hxx" | "h++" | "ipp" | "tpp" | "inl" => {
            Language::Cpp
        }
        "rb" | "rake" | "gemspec" | "ru" => Language::Ruby,
        "cs" => Language::CSharp,
        "php" | "phtml" => Language::Php,
        "sh" | "bash" => Language::Bash,
        "md" | "markdown" | "mdx" => Language::Markdown,
        _ => Language::Text,
    }
}

/// Whether a `.h` header is C++: looks at the first 64 KiB for a line starting with `class `,
/// `namespace `, `template<`/`template <`, `public:`/`private:`/`protected:`, or containing `::`
/// outside a comment-only line.
pub fn h_is_cpp(text: &str) -> bool {
    let mut end = text.len().min(64 * 1024);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].lines().any(|line| {
        let t = line.trim_start();
        if t.starts_with("//") || t.starts_with('*') || t.starts_with("/*") {
            return false;
        }
        t.starts_with("class ")
            || t.starts_with("namespace ")
            || t.starts_with("template<")
            || t.starts_with("template <")
            || t.starts_with("public:")
            || t.starts_with("private:")
            || t.starts_with("protected:")
            || t.starts_with("using namespace ")
            || (t.contains("::") && !t.starts_with('#'))
    })
}

/// What a capture in a definition query means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Definition(DefKind),
    Name,
    Parent,
    Detail,
    /// A node wrapping a definition whose range it extends (decorators, `export`, `template`).
    Wrapper,
    Other,
}

/// A compiled definition query and what its captures mean.
pub(crate) struct LangSpec {
    pub lang: Language,
    pub language: tree_sitter::Language,
    pub query: Query,
    /// Indexed by capture index.
    pub roles: Vec<Role>,
    /// Line prefixes of comments and attributes that belong to the chunk of the definition
    /// right below them.
    pub leading: &'static [&'static str],
    /// Whether a function whose nearest container is a module is a method (Ruby).
    pub module_functions_are_methods: bool,
    /// Whether a qualified function name (`Foo::bar`) names its class (C++).
    pub split_qualified_names: bool,
    /// Node kinds (by id) that a query pattern starts at: the query runs only there.
    pub roots: Vec<bool>,
    /// Node kinds (by id) whose children may hold definitions: the only subtrees searched (plus
    /// `ERROR` nodes). See [`scopes`].
    pub scopes: Vec<bool>,
    /// Node kinds (by id) captured as `@wrapper`.
    pub wrappers: Vec<bool>,
}

impl LangSpec {
    pub fn is_root(&self, kind_id: u16) -> bool {
        self.roots.get(kind_id as usize).copied().unwrap_or(false)
    }

    pub fn is_scope(&self, kind_id: u16) -> bool {
        self.scopes.get(kind_id as usize).copied().unwrap_or(false)
    }

    pub fn is_wrapper(&self, kind_id: u16) -> bool {
        self.wrappers
            .get(kind_id as usize)
            .copied()
            .unwrap_or(false)
    }
}

/// Where definitions are looked for: node kinds whose children are searched. Definitions inside
/// other nodes (expressions: a function inside a closure passed as an argument, say) are not
/// found unless [`super::IndexOptions::exhaustive`] is set; skipping expression subtrees is most
/// of what makes indexing fast (a query over every node costs about half a parse).
fn scopes(lang: Language) -> &'static [&'static str] {
    const JS: &[&str] = &[
        "program",
        "statement_block",
        "class_declaration",
        "class",
        "class_body",
        "function_declaration",
        "generator_function_declaration",
        "function_expression",
        "generator_function",
        "arrow_function",
        "method_definition",
        "export_statement",
        "lexical_declaration",
        "variable_declaration",
        "variable_declarator",
        "field_definition",
        "expression_statement",
        "call_expression",
        "arguments",
        "parenthesized_expression",
        "member_expression",
        "assignment_expression",
        "object",
        "pair",
        "return_statement",
        "if_statement",
        "else_clause",
        "try_statement",
        "catch_clause",
        "finally_clause",
        "new_expression",
        "await_expression",
        // TypeScript
        "abstract_class_declaration",
        "public_field_definition",
        "internal_module",
        "module",
        "ambient_declaration",
        "interface_declaration",
        "interface_body",
        "object_type",
    ];
    const C: &[&str] = &[
        "translation_unit",
        "preproc_if",
        "preproc_ifdef",
        "preproc_else",
        "preproc_elif",
        "preproc_elifdef",
        "declaration",
        "type_definition",
        "struct_specifier",
        "union_specifier",
        "field_declaration_list",
        "field_declaration",
        // C++
        "namespace_definition",
        "declaration_list",
        "class_specifier",
        "template_declaration",
        "linkage_specification",
    ];
    match lang {
        Language::Rust => &[
            "source_file",
            "declaration_list",
            "mod_item",
            "impl_item",
            "trait_item",
            "foreign_mod_item",
            "function_item",
            "block",
            // Items in the blocks of control flow (syn's tests define a struct in each
            // `if let` of a Debug impl): statements and their blocks, not other expressions.
            "expression_statement",
            "let_declaration",
            "if_expression",
            "else_clause",
            "match_expression",
            "match_block",
            "match_arm",
            "loop_expression",
            "while_expression",
            "for_expression",
            "unsafe_block",
            "async_block",
            "closure_expression",
            // `const _: () = { impl Display for MyError { ... } };`, as derives and probes write.
            "const_item",
            "static_item",
        ],
        Language::Python => &[
            "module",
            "block",
            "class_definition",
            "function_definition",
            "decorated_definition",
            "if_statement",
            "elif_clause",
            "else_clause",
            "try_statement",
            "except_clause",
            "finally_clause",
            "with_statement",
        ],
        Language::Javascript | Language::Typescript | Language::Tsx => JS,
        Language::Go => &[
            "source_file",
            "type_declaration",
            "const_declaration",
            "function_declaration",
            "method_declaration",
            "block",
        ],
        Language::Java => &[
            "program",
            "class_declaration",
            "class_body",
            "interface_declaration",
            "interface_body",
            "enum_declaration",
            "enum_body",
            "enum_body_declarations",
            "record_declaration",
            "annotation_type_declaration",
            "annotation_type_body",
            "method_declaration",
            "constructor_declaration",
            "constructor_body",
            "block",
            "local_variable_declaration",
            "variable_declarator",
            "expression_statement",
            "object_creation_expression",
            "return_statement",
        ],
        Language::C | Language::Cpp => C,
        Language::CSharp => &[
            "compilation_unit",
            "namespace_declaration",
            "file_scoped_namespace_declaration",
            "declaration_list",
            "class_declaration",
            "struct_declaration",
            "interface_declaration",
            "record_declaration",
            "method_declaration",
            "constructor_declaration",
            "local_function_statement",
            "block",
        ],
        Language::Ruby => &[
            "program",
            "class",
            "module",
            "body_statement",
            "singleton_class",
            "method",
            "singleton_method",
            "call",
            "do_block",
            "block",
            "block_body",
            "begin",
            "if",
            "then",
            "else",
        ],
        Language::Php => &[
            "program",
            "namespace_definition",
            "compound_statement",
            "declaration_list",
            "class_declaration",
            "interface_declaration",
            "trait_declaration",
            "enum_declaration",
            "enum_declaration_list",
            "function_definition",
            "method_declaration",
            "if_statement",
            "else_clause",
            "else_if_clause",
            "colon_block",
        ],
        Language::Bash => &[
            "program",
            "function_definition",
            "compound_statement",
            "if_statement",
            "elif_clause",
            "else_clause",
            "subshell",
        ],
        Language::Markdown | Language::Text => &[],
    }
}

/// Node kinds that top-level patterns of a query start with: `(kind ...)` at nesting depth 0.
fn pattern_roots(source: &str) -> Vec<&str> {
    patterns(source).into_iter().map(|(root, _)| root).collect()
}

/// Top-level patterns: their root node kind, and whether they capture `@wrapper`.
fn patterns(source: &str) -> Vec<(&str, bool)> {
    let mut roots: Vec<(&str, bool)> = Vec::new();
    let mut depth = 0i32;
    let mut chars = source.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            ';' => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for (_, c) in chars.by_ref() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
            }
            '(' | '[' => {
                if depth == 0 && c == '(' {
                    let rest = &source[i + 1..];
                    let end = rest
                        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    roots.push((&rest[..end], false));
                }
                depth += 1;
            }
            ')' | ']' => depth -= 1,
            '@' => {
                let rest = &source[i + 1..];
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                    .unwrap_or(rest.len());
                if &rest[..end] == "wrapper"
                    && let Some(last) = roots.last_mut()
                {
                    last.1 = true;
                }
            }
            _ => {}
        }
    }
    roots
}

fn kind_set(language: &tree_sitter::Language, names: &[&str]) -> Vec<bool> {
    let count = language.node_kind_count();
    (0..count)
        .map(|id| {
            let id = u16::try_from(id).unwrap_or(u16::MAX);
            language.node_kind_is_named(id)
                && language
                    .node_kind_for_id(id)
                    .is_some_and(|kind| names.contains(&kind))
        })
        .collect()
}

fn grammar(lang: Language) -> Option<tree_sitter::Language> {
    Some(match lang {
        Language::Rust => tree_sitter_rust::LANGUAGE.into(),
        Language::Python => tree_sitter_python::LANGUAGE.into(),
        Language::Javascript => tree_sitter_javascript::LANGUAGE.into(),
        Language::Typescript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
        Language::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
        Language::Go => tree_sitter_go::LANGUAGE.into(),
        Language::Java => tree_sitter_java::LANGUAGE.into(),
        Language::C => tree_sitter_c::LANGUAGE.into(),
        Language::Cpp => tree_sitter_cpp::LANGUAGE.into(),
        Language::Ruby => tree_sitter_ruby::LANGUAGE.into(),
        Language::CSharp => tree_sitter_c_sharp::LANGUAGE.into(),
        Language::Php => tree_sitter_php::LANGUAGE_PHP.into(),
        Language::Bash => tree_sitter_bash::LANGUAGE.into(),
        Language::Markdown | Language::Text => return None,
    })
}

const JS: &str = include_str!("queries/javascript.scm");

fn query_source(lang: Language) -> Option<String> {
    Some(match lang {
        Language::Rust => include_str!("queries/rust.scm").to_owned(),
        Language::Python => include_str!("queries/python.scm").to_owned(),
        Language::Javascript => format!("{JS}\n{}", include_str!("queries/javascript_fields.scm")),
        Language::Typescript | Language::Tsx => {
            format!("{JS}\n{}", include_str!("queries/typescript.scm"))
        }
        Language::Go => include_str!("queries/go.scm").to_owned(),
        Language::Java => include_str!("queries/java.scm").to_owned(),
        Language::C => include_str!("queries/c.scm").to_owned(),
        Language::Cpp => include_str!("queries/cpp.scm").to_owned(),
        Language::Ruby => include_str!("queries/ruby.scm").to_owned(),
        Language::CSharp => include_str!("queries/c_sharp.scm").to_owned(),
        Language::Php => include_str!("queries/php.scm").to_owned(),
        Language::Bash => include_str!("queries/bash.scm").to_owned(),
        Language::Markdown | Language::Text => return None,
    })
}

fn leading(lang: Language) -> &'static [&'static str] {
    const C_LIKE: &[&str] = &["//", "/*", "*", "*/"];
    match lang {
        Language::Rust => &["//", "/*", "*", "*/", "#["],
        Language::Python | Language::Ruby | Language::Bash => &["#"],
        Language::Php => &["//", "/*", "*", "*/", "#"],
        Language::CSharp => &["//", "/*", "*", "*/", "["],
        Language::Java => &["//", "/*", "*", "*/", "@"],
        Language::Markdown | Language::Text => &[],
        _ => C_LIKE,
    }
}

fn build_spec(lang: Language) -> Result<LangSpec, String> {
    let language = grammar(lang).ok_or_else(|| format!("no grammar for {lang}"))?;
    let source = query_source(lang).ok_or_else(|| format!("no query for {lang}"))?;
    let query = Query::new(&language, &source).map_err(|e| format!("{lang} query: {e}"))?;
    let roles = query
        .capture_names()
        .iter()
        .map(|name| match *name {
            "name" => Role::Name,
            "parent" => Role::Parent,
            "detail" => Role::Detail,
            "wrapper" => Role::Wrapper,
            other => match other.strip_prefix("definition.") {
                Some(kind) => DefKind::parse(kind).map_or(Role::Other, Role::Definition),
                None => Role::Other,
            },
        })
        .collect();
    let roots = pattern_roots(&source);
    let wrapper_roots: Vec<&str> = patterns(&source)
        .into_iter()
        .filter_map(|(root, wrapper)| wrapper.then_some(root))
        .collect();
    if roots.iter().any(|r| r.is_empty() || *r == "_") {
        return Err(format!(
            "{lang} query: every pattern must start with a named node kind"
        ));
    }
    Ok(LangSpec {
        roots: kind_set(&language, &roots),
        wrappers: kind_set(&language, &wrapper_roots),
        scopes: kind_set(&language, scopes(lang)),
        lang,
        language,
        query,
        roles,
        leading: leading(lang),
        module_functions_are_methods: lang == Language::Ruby,
        split_qualified_names: lang == Language::Cpp,
    })
}

/// The compiled spec for a language with a grammar; `Err` (with the reason) should never happen
/// since every query is tested, but a broken query degrades files to line chunks, never panics.
pub(crate) fn spec(lang: Language) -> Result<&'static LangSpec, &'static str> {
    static SPECS: [OnceLock<Result<LangSpec, String>>; Language::ALL.len()] =
        [const { OnceLock::new() }; Language::ALL.len()];
    let slot = &SPECS[lang as usize];
    match slot.get_or_init(|| build_spec(lang)) {
        Ok(spec) => Ok(spec),
        Err(e) => Err(e.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_compiles() {
        for lang in Language::ALL {
            if lang.has_grammar() {
                let spec = spec(lang).unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    spec.roles.iter().any(|r| matches!(r, Role::Definition(_))),
                    "{lang}"
                );
            }
        }
    }

    #[test]
    fn pattern_roots_are_found() {
        let src = "; (comment)\n(a (b) @x) @y\n[(c)] \"(s)\"\n(d_e\n  name: (f)) (g)";
        assert_eq!(pattern_roots(src), ["a", "d_e", "g"]);
        let src = "(a) @wrapper\n; @wrapper\n(b (c) @wrapper.not)\n(d) @x @wrapper";
        assert_eq!(patterns(src), [("a", true), ("b", false), ("d", true)]);
        let python = spec(Language::Python).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(python.wrappers.iter().filter(|w| **w).count(), 1);
        for lang in Language::ALL.into_iter().filter(|l| l.has_grammar()) {
            let spec = spec(lang).unwrap_or_else(|e| panic!("{e}"));
            let source = query_source(lang).unwrap_or_default();
            for root in pattern_roots(&source) {
                let known = (0..spec.language.node_kind_count()).any(|id| {
                    let id = id as u16;
                    spec.language.node_kind_for_id(id) == Some(root) && spec.roots[id as usize]
                });
                assert!(known, "{lang}: {root}");
            }
            // JavaScript and TypeScript share one list, C and C++ another: a kind must exist in
            // one of the grammars that share its list.
            let group: &[Language] = match lang {
                Language::Javascript | Language::Typescript | Language::Tsx => {
                    &[Language::Javascript, Language::Typescript, Language::Tsx]
                }
                Language::C | Language::Cpp => &[Language::C, Language::Cpp],
                _ => &[lang],
            };
            for scope in scopes(lang) {
                let known = group.iter().any(|&l| {
                    let Ok(other) = super::spec(l) else {
                        return false;
                    };
                    (0..other.language.node_kind_count())
                        .any(|id| other.language.node_kind_for_id(id as u16) == Some(*scope))
                });
                assert!(known, "{lang}: scope {scope}");
            }
        }
    }

    #[test]
    fn languages_by_path() {
        let cases = [
            ("a/b.rs", "", Language::Rust),
            ("x.pyi", "", Language::Python),
            ("x.jsx", "", Language::Javascript),
            ("x.mts", "", Language::Typescript),
            ("x.tsx", "", Language::Tsx),
            ("x.h", "int f(void);\n", Language::C),
            ("x.h", "namespace a {\n}\n", Language::Cpp),
            ("x.hpp", "", Language::Cpp),
            ("Rakefile", "", Language::Ruby),
            ("x.cs", "", Language::CSharp),
            ("run", "#!/bin/bash\n", Language::Bash),
            ("README.md", "", Language::Markdown),
            ("Cargo.toml", "", Language::Text),
        ];
        for (path, text, want) in cases {
            assert_eq!(language_for_path(path, text), want, "{path}");
        }
    }
}
