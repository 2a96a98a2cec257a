; Tags shared by JavaScript and TypeScript (whose grammar extends JavaScript's): not a
; language of its own; javascript.scm and typescript.scm start with "; inherits: ecma".
; Only patterns that compile against the javascript, typescript and tsx grammars belong here.

(function_declaration name: (identifier) @name.definition.function) @definition.function
(generator_function_declaration name: (identifier) @name.definition.function) @definition.function
(method_definition name: (property_identifier) @name.definition.method) @definition.method
; const f = (x) => ...; const g = function () {...}
(lexical_declaration (variable_declarator name: (identifier) @name.definition.function
  value: [(arrow_function) (function_expression)]) @definition.function)
(variable_declaration (variable_declarator name: (identifier) @name.definition.function
  value: [(arrow_function) (function_expression)]) @definition.function)

(import_statement (import_clause (named_imports (import_specifier name: (identifier) @import.name
  !alias))) source: (string) @import.module) @import
(import_statement (import_clause (named_imports (import_specifier name: (identifier) @import.name
  alias: (identifier) @import.alias))) source: (string) @import.module) @import
(import_statement (import_clause (identifier) @import.alias) source: (string) @import.module) @import
(import_statement (import_clause (namespace_import (identifier) @import.alias))
  source: (string) @import.module) @import
; Side-effect imports (import "x"); merged away when a more specific pattern matched.
(import_statement source: (string) @import.module) @import
(call_expression function: (identifier) @_require (#eq? @_require "require")
  arguments: (arguments . (string) @import.module)) @import

; == references and context ==

(call_expression function: [(identifier) @name.reference.call
                            (member_expression property: (property_identifier) @name.reference.call)])
(new_expression constructor: [(identifier) @name.reference.class
                              (member_expression property: (property_identifier) @name.reference.class)])
(member_expression property: (property_identifier) @name.reference.attribute)

(identifier) @context.identifier
(property_identifier) @context.identifier
[(string) (template_string)] @context.string
