; Definitions in Python. A decorated definition's range includes its decorators (done in code:
; `decorated_definition` is a wrapper). Module- and class-level ALL_CAPS assignments are constants.

(class_definition name: (identifier) @name) @definition.class
(function_definition name: (identifier) @name) @definition.function
(type_alias_statement left: (type (identifier) @name)) @definition.type
(module
  (expression_statement
    (assignment left: (identifier) @name)) @definition.constant
  (#match? @name "^_*[A-Z][A-Z0-9_]*$"))
(class_definition
  body: (block
    (expression_statement
      (assignment left: (identifier) @name)) @definition.constant)
  (#match? @name "^_*[A-Z][A-Z0-9_]*$"))

; Wrappers: decorators belong to the range of the definition they decorate.
(decorated_definition) @wrapper
