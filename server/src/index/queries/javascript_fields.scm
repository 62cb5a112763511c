; JavaScript only (TypeScript calls these `public_field_definition`): class fields holding functions.

(field_definition
  property: (_) @name
  value: [(arrow_function) (function_expression)]) @definition.method
