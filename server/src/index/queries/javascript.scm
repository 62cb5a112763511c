; Definitions in JavaScript (also the base of the TypeScript and TSX queries). Functions and
; classes assigned to `const`/`let`/`var` count as definitions of that name; `export` is a
; wrapper whose range is included (done in code).

(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(class_declaration name: (_) @name) @definition.class
(method_definition name: (_) @name) @definition.method
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function)])) @definition.function
(variable_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function)])) @definition.function
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: (class))) @definition.class
(variable_declaration
  (variable_declarator
    name: (identifier) @name
    value: (class))) @definition.class
(lexical_declaration
  (variable_declarator name: (identifier) @name)
  (#match? @name "^_*[A-Z][A-Z0-9_]*$")) @definition.constant

; Wrappers: an `export` belongs to the range of the definition it exports.
(export_statement) @wrapper
