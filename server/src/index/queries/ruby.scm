; Definitions in Ruby. `def` inside a class or module is a method; `def self.x` is a singleton
; method of the enclosing class (also inside `class << self`).

(class name: (_) @name) @definition.class
(module name: (_) @name) @definition.module
(method name: (_) @name) @definition.function
(singleton_method name: (_) @name) @definition.method
(assignment left: (constant) @name) @definition.constant
